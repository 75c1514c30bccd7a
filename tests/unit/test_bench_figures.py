"""The benchmark's arithmetic: commit-to-visible from probe readings, and which load counts as sustained."""

from infra.bench import load, report, report_live


def _run(*sent: tuple[float, int]) -> load.OpenLoop:
    run = load.OpenLoop(rate=10, seconds=1)
    run.sent = [load.Sent(scheduled=at - 0.01, answered=at, position=pos) for at, pos in sent]
    return run


def _probe(*readings: tuple[float, int]) -> load.Probe:
    probe = load.Probe("unused")
    probe.readings = [(at, {"order_summaries": pos}) for at, pos in readings]
    return probe


def test_visible_at_the_first_reading_at_or_past_the_position():
    run = _run((1.0, 5), (1.1, 6), (1.1, 9))
    seen = load.visibility(run, _probe((1.05, 4), (1.2, 6), (1.5, 9)), ["order_summaries"])
    # 5 and 6 first seen at 1.2 (0.2 s and 0.1 s after their answers); 9 at 1.5 (0.4 s)
    assert seen["order_summaries"]["visible"] == 3
    assert seen["order_summaries"]["p50_ms"] == 200.0
    assert seen["order_summaries"]["p99_ms"] == 400.0


def test_a_position_never_reached_counts_as_not_visible_and_earlier_readings_as_zero():
    seen = load.visibility(_run((1.0, 3), (1.0, 12)), _probe((0.9, 5), (1.3, 10)), ["order_summaries"])
    assert seen["order_summaries"]["not_visible"] == 1
    assert seen["order_summaries"]["p99_ms"] == 0.0


def _load(offered: int, achieved: float, p99: float, missing: int = 0) -> dict:
    store = {"p99_ms": p99, "not_visible": missing}
    return {
        "offered_per_s": offered,
        "achieved_per_s": achieved,
        "errors": 0,
        "stores": dict.fromkeys(report.STORES, store),
    }


def test_sustained_is_the_highest_load_met_within_the_p99_goal():
    results = {"visibility": [_load(100, 100, 40), _load(250, 249, 120), _load(500, 380, 90), _load(1000, 990, 900)]}
    assert report.sustained(results) == 250


def test_no_load_is_sustained_when_writes_go_missing():
    assert report.sustained({"visibility": [_load(100, 100, 40, missing=1)]}) is None


def test_the_goal_at_a_load_is_the_slowest_store_and_none_when_a_write_went_missing():
    run = _load(250, 250, 90)
    run["stores"] = {**run["stores"], "order_search": {"p99_ms": 310.0, "not_visible": 0}}
    assert report._worst({"visibility": [run]}, 250, "p99_ms") == 310.0
    assert report._worst({"visibility": [_load(250, 250, 90, missing=2)]}, 250, "p99_ms") is None
    assert report._worst({"visibility": [run]}, 100, "p99_ms") is None


def test_prism_cpu_counts_only_prism_processes():
    run = {"cpu_percent": {"prism api": 80.0, "prism worker order_search": 30.5, "java": 50.0, "postgres": 20.0}}
    assert report.prism_cpu(run) == 110.5


def test_cpu_meter_names_prism_children_by_role():
    from infra.bench.cpu import _name

    assert _name(["/venv/bin/python3", "-m", "infra.cli", "api", "--fd", "3"], "1 (python3) S") == "prism api"
    assert (
        _name(["python", "-m", "infra.cli", "clickhouse-owner", "--socket", "/x/y.sock"], "1 (python) S")
        == "prism clickhouse-owner"
    )
    assert _name(["/usr/lib/postgresql/15/bin/postgres", "-D", "/d"], "7 (postgres) S") == "postgres"


def _write(clients: int, per_s: float, p50: float, p99: float, floor_per_s: float | None) -> dict:
    floor = None if floor_per_s is None else {"per_s": floor_per_s, "p50_ms": 1.0, "p99_ms": 2.0}
    return {"clients": clients, "per_s": per_s, "p50_ms": p50, "p99_ms": p99, "errors": 0, "floor": floor}


def test_the_write_path_is_measured_against_its_floor_at_the_same_clients():
    assert report.floor_ratio(_write(16, 200.0, 5, 9, 800.0)) == 0.25
    assert report.floor_ratio(_write(16, 200.0, 5, 9, None)) is None


def test_write_goals_read_64_clients_the_widest_floor_and_one_client():
    results = {
        "write_path": [_write(1, 300, 2.5, 4, 900), _write(16, 900, 9, 40, 1000), _write(64, 1100, 30, 120, 1000)]
    }
    goals = {g["goal"]: g["measured"] for g in report.write_goals(results)}
    assert goals == {
        "PlaceOrder/s at 64 clients over HTTP": 1100,
        "PlaceOrder p99 ms at 64 clients": 120,
        "PlaceOrder/s / statement floor at 64 clients": 1.1,
        "PlaceOrder p50 ms at 1 client": 2.5,
    }
    quick = {"write_path": [_write(16, 50, 300, 900, 700)]}
    assert report.write_goals(quick) == []  # at 16 clients the floor's goal is the live path's, at half the floor
    [at_16] = [g for g in report_live.goals(quick) if g["goal"] == "PlaceOrder/s / statement floor at 16 clients"]
    assert (at_16["target"], at_16["measured"]) == (0.5, round(50 / _write(16, 50, 300, 900, 700)["floor"]["per_s"], 2))
