"""Operations over HTTP: status, metrics, health, readiness and dead letters."""

from __future__ import annotations

from infra.bench.report import STORES
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, eventually
from tests.e2e.test_read_your_writes import open_shop
from workers import dead_letters
from write import event_log


async def test_status_and_metrics_report_every_projection(http, api_tenant):
    await open_shop(http, api_tenant)
    rows = (await http.get("/projections", headers=OPERATOR)).json()
    assert {r["projection"] for r in rows} == set(PROJECTIONS)
    assert all(r["state"] in ("live", "catching up") and r["head"] >= r["checkpoint"] for r in rows)
    metrics = (await http.get("/metrics")).text
    for name in (
        "prism_log_head",
        "prism_projection_checkpoint",
        "prism_projection_lag_events",
        "prism_projection_lag_seconds",
        "prism_projection_dead_letters",
        "prism_projection_halted",
    ):
        assert f"# TYPE {name} gauge" in metrics
    assert 'prism_projection_checkpoint{projection="order_search"}' in metrics


async def test_positions_reach_a_write_in_every_store(http, api_tenant):
    _, made = await open_shop(http, api_tenant)
    position = made["order"]["position"]

    async def everywhere() -> bool:
        body = (await http.get("/positions", headers=OPERATOR)).json()
        assert body["head"] >= position
        return set(body["checkpoints"]) == set(STORES) and min(body["checkpoints"].values()) >= position

    await eventually(everywhere, what=f"every store at position {position}")


async def test_health_and_readiness(http):
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "failed": {}}


async def test_a_parked_event_is_listed_counted_and_retried_over_http(http, api_tenant, write_engine):
    _, made = await open_shop(http, api_tenant)
    async with write_engine.connect() as conn:
        event = (await event_log.read_after(conn, made["order"]["position"] - 1, 1))[0]
    await dead_letters.record_failure(write_engine, "customer_dashboards", event.position, ValueError("boom"))
    dead_id = await dead_letters.park(write_engine, "customer_dashboards", event, dead_letters.SKIP)

    refused = await http.get("/deadletters")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    listed = (await http.get("/deadletters", params={"projection": "customer_dashboards"}, headers=OPERATOR)).json()
    assert [(d["id"], d["position"], d["status"], d["error"]) for d in listed] == [
        (dead_id, event.position, "parked", "ValueError: boom")
    ]
    status = {r["projection"]: r for r in (await http.get("/projections", headers=OPERATOR)).json()}
    assert status["customer_dashboards"]["dead_letters"] == 1

    retried = await http.post(f"/deadletters/{dead_id}/retry", headers=OPERATOR)
    assert retried.status_code == 200 and retried.json()["status"] == "retried"
    again = await http.post(f"/deadletters/{dead_id}/retry", headers=OPERATOR)
    assert again.status_code == 409 and "already retried" in again.json()["message"]
    assert (await http.post("/deadletters/999999/discard", headers=OPERATOR)).status_code == 404
    assert (await http.get("/deadletters", headers=OPERATOR)).json() == []
