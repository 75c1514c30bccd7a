"""The pure fold behind the Redis and Elasticsearch documents."""

import itertools
import uuid
from datetime import UTC, datetime

from projections import documents
from write import events as e
from write.events import StoredEvent

CUSTOMER, PRODUCT = str(uuid.uuid4()), str(uuid.uuid4())


def event(position: int, kind: str, payload: dict) -> StoredEvent:
    return StoredEvent(
        position, uuid.uuid4(), "t", "order", uuid.uuid4(), 1, kind, 1, datetime(2026, 1, 1, tzinfo=UTC), payload
    )


def order_event(position: int, order_id: str, status: str, name: str = "Ana") -> StoredEvent:
    snapshot = {
        "order_id": order_id,
        "customer": {"id": CUSTOMER, "name": name, "email": "a@x.io"},
        "status": status,
        "items": [
            {
                "line_no": 1,
                "product_id": PRODUCT,
                "product_name": "Widget",
                "quantity": 2,
                "unit_price": "1.00",
                "line_total": "2.00",
            }
        ],
        "subtotal": "2.00",
        "discount_percent": "0",
        "discount": "0.00",
        "total": "2.00",
        "discount_authorised_by": None,
        "note": None,
        "cancel_reason": None,
        "placed_at": "2026-01-01T00:00:00+00:00",
        "confirmed_at": None,
        "shipped_at": None,
        "cancelled_at": None,
        "version": 1,
    }
    return event(position, e.ORDER_PLACED if status == "pending" else e.ORDER_SHIPPED, {"order": snapshot})


def history() -> list[StoredEvent]:
    return [
        order_event(1, "o1", "pending"),
        order_event(2, "o2", "pending"),
        event(3, e.CUSTOMER_RENAMED, {"customer_id": CUSTOMER, "name": "Ana Lima", "email": "a@x.io"}),
        order_event(4, "o1", "shipped", name="Ana Lima"),
        event(5, e.PRODUCT_RENAMED, {"product_id": PRODUCT, "name": "Widget Pro", "price": "1.00", "sku": None}),
    ]


def apply(state: dict, dims: dict, batch: list) -> None:
    docs, new_dims = documents.fold(state, batch, dims)
    state |= docs
    dims |= new_dims


def test_renames_reach_documents_already_written():
    docs, _ = documents.fold({}, history())
    assert {d["customer_name"] for d in docs.values()} == {"Ana Lima"}
    assert {d["items"][0]["product_name"] for d in docs.values()} == {"Widget Pro"}
    assert docs["o1"]["status"] == "shipped"


def test_folding_twice_changes_nothing():
    once, dims = documents.fold({}, history())
    assert documents.fold(once, history(), dims) == ({}, {})


def test_any_batch_order_ends_in_the_same_documents():
    events = history()
    expected, _ = documents.fold({}, events)
    batches = [events[:2], events[2:4], events[4:]]
    for ordering in itertools.permutations(batches + batches[:1]):
        state: dict = {}
        dims: dict = {}
        for batch in ordering:
            apply(state, dims, batch)
        assert state == expected, [b[0].position for b in ordering]
