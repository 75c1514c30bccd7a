"""An order placed over HTTP with a shipping address: stored, carried by OrderPlaced 2, and read as before."""

from __future__ import annotations

from sqlalchemy import text

from tests.e2e.test_read_your_writes import open_shop

ADDRESS = {
    "recipient": "Kenji Watanabe",
    "street_lines": ["1-9-1 Marunouchi", "Chiyoda-ku"],
    "city": "Tokyo",
    "postal_code": "100-0005",
    "country": "JP",
}


async def test_an_order_with_an_address_is_placed_and_projected(http, api_tenant, write_engine):
    shop, made = await open_shop(http, api_tenant)
    body = {"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"], "quantity": 1}]}
    answer = await shop.post("/orders", body | {"shipping_address": ADDRESS}, 201)
    assert set(answer) == {"id", "version", "position"}, "the command's answer is unchanged"
    async with write_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT shipping_country, shipping_street_lines FROM orders WHERE id = :id"), {"id": answer["id"]}
            )
        ).one()
        event = (
            await conn.execute(
                text("SELECT schema_version, payload FROM events WHERE position = :p"), {"p": answer["position"]}
            )
        ).one()
    assert tuple(row) == ("JP", ["1-9-1 Marunouchi", "Chiyoda-ku"])
    assert (event.schema_version, event.payload["shipping_address"]) == (2, ADDRESS)
    summary, served = await shop.get(f"/orders/{answer['id']}", answer["position"])
    assert served >= answer["position"] and (summary["status"], summary["total"]) == ("pending", "12.50")
    assert "shipping_address" not in summary, "the readers' documents are unchanged"
