"""The live-path bench's arithmetic and /proc readings: CPU net of idle, per order and by store, the highest rate
within budgets, process roles and stores, memory from smaps_rollup, and the goals built on them."""

import asyncio
import os
import sys

from infra.bench import cost, live, procs, replay, report_live
from tests.conftest import eventually


def test_net_of_idle_subtracts_the_idle_rate_over_the_loaded_stretch():
    loaded = cost.Usage(12.0, {"api": 3.0, "relay": 0.5}, {"postgres": 2.0})
    idle = cost.Usage(10.0, {"api": 1.0, "worker order_search": 0.5}, {"postgres": 0.5})
    net = cost.net_of_idle(loaded, idle)
    # idle used 1.0 s of api in 10 s: over the loaded 12 s that is 1.2 s
    assert net.seconds == 12.0
    assert net.prism == {"api": 1.8, "relay": 0.5, "worker order_search": -0.6}
    assert net.stores == {"postgres": 1.4}


def test_per_order_groups_prism_and_stores_and_totals_them():
    usage = cost.Usage(10.0, {"api": 0.4, "worker order_search": 0.2}, {"postgres": 0.3, "redis": 0.1})
    figures = cost.per_unit(usage, 100)
    assert figures["processes_ms"] == {"api": 4.0, "worker order_search": 2.0}
    assert figures["stores_ms"] == {"postgres": 3.0, "redis": 1.0}
    assert (figures["prism_ms"], figures["stores_total_ms"], figures["total_ms"]) == (6.0, 4.0, 10.0)
    assert cost.per_unit(usage, 0) == {"units": 0}


def _run(rate: int, p99: dict[str, float], achieved: float | None = None, errors: int = 0, missing: int = 0) -> dict:
    return {
        "offered_per_s": rate,
        "achieved_per_s": rate if achieved is None else achieved,
        "errors": errors,
        "stores": {name: {"p99_ms": ms, "not_visible": missing} for name, ms in p99.items()},
    }


WITHIN = {"order_summaries": 100, "customer_dashboards": 100, "shipping_dashboard": 100}
WITHIN |= {"order_search": 1000, "order_analytics": 1000}


def test_the_highest_rate_is_the_highest_within_every_stores_budget():
    runs = [
        _run(50, WITHIN),
        _run(100, WITHIN),
        _run(200, WITHIN | {"order_search": 1300}),  # search past its 1.2 s
        _run(250, WITHIN, achieved=200),  # the load itself was not met
    ]
    assert live.highest_within(runs) == 100
    assert live.highest_within([_run(20, WITHIN, missing=1)]) is None
    assert live.highest_within([_run(20, WITHIN, errors=2)]) is None
    assert live.highest_within([_run(20, {"order_summaries": 10})]) is None  # a store not measured is not within


def test_prism_roles_from_their_command_lines():
    cli = ("/venv/bin/python", "-m", "infra.cli")
    assert procs.role((*cli, "api", "--fd", "3")) == "api"
    assert procs.role((*cli, "worker", "order_search", "--takes", "live")) == "worker order_search"
    assert procs.role((*cli, "worker", "order_search", "--takes", "builds")) == "builder order_search"
    assert procs.role((*cli, "clickhouse-owner", "--socket", "/x.sock")) == "clickhouse owner"
    assert procs.role((*cli, "serve")) == "supervisor"
    assert procs.role((*cli, "relay")) == "relay"
    assert procs.role(("/venv/bin/python", "-m", "infra.bench.replay", "order_search", "1")) == "replay order_search"


def _proc(comm: str, *args: str) -> procs.Proc:
    return procs.Proc(1, 0, comm, args, 0.0)


def test_stores_count_postgres_backends_of_the_bench_databases_only():
    bench = ["prism_bench_write"]
    assert procs.store_of(_proc("postgres", "postgres: prism prism_bench_write 127.0.0.1(4) idle"), bench) == "postgres"
    assert procs.store_of(_proc("postgres", "postgres: prism prism_slot3_write 127.0.0.1(4) idle"), bench) is None
    assert procs.store_of(_proc("postgres", "postgres: prism other [local] idle"), bench) is None
    assert procs.store_of(_proc("postgres", "postgres: checkpointer "), bench) == "postgres"
    assert procs.store_of(_proc("postgres", "postgres: logical replication launcher"), bench) == "postgres"
    assert procs.store_of(_proc("postgres", "/usr/lib/postgresql/15/bin/postgres", "-D", "/data"), bench) == "postgres"
    assert procs.store_of(_proc("redis-server", "redis-server 127.0.0.1:56379"), bench) == "redis"
    assert procs.store_of(_proc("java", "java", "-Des.path.home=/usr/share/elasticsearch"), bench) == "elasticsearch"
    assert procs.store_of(_proc("java", "java", "-jar", "other.jar"), bench) is None
    assert procs.store_of(_proc("python", "python"), bench) is None


def test_stat_lines_with_spaces_and_parentheses_in_the_name():
    fields = " ".join(["S", "42"] + ["0"] * 9 + ["250", "50"] + ["0"] * 30)
    proc = procs.parse_stat(7, f"7 (odd (name) x) {fields}", ("odd",))
    assert (proc.comm, proc.ppid, proc.cpu_seconds) == ("odd (name) x", 42, 300 / os.sysconf("SC_CLK_TCK"))


def test_rss_and_pss_from_smaps_rollup():
    text = (
        "55d0c0a00000-7ffd5c1f2000 ---p 00000000 00:00 0    [rollup]\n"
        "Rss:              120832 kB\nPss:               64000 kB\nPss_Anon:          50000 kB\nShared_Clean: 0 kB\n"
    )
    assert procs.parse_rollup(text) == procs.Memory(rss_kb=120832, pss_kb=64000)
    assert procs.parse_rollup("") == procs.Memory(0, 0)


def test_this_process_tree_memory_is_read_from_proc():
    [row] = [r for r in procs.tree_memory(os.getpid()) if r["pid"] == os.getpid()]
    assert 0 < row["pss_mb"] <= row["rss_mb"]


async def test_a_process_started_within_the_stretch_counts_all_its_cpu():
    burn = "import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nsys.stdin.read()"
    async with cost.CpuSampler([os.getpid()], [], every=0.05) as sampler:
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", burn, stdin=asyncio.subprocess.PIPE)
        try:

            async def burnt() -> bool:
                tracked = sampler.seen.get(child.pid)
                return tracked is not None and tracked.last >= 0.25

            await eventually(burnt, timeout=20, what="the child's CPU in a sample")
        finally:
            assert child.stdin is not None
            child.stdin.close()
            await child.wait()
    tracked = sampler.seen[child.pid]
    assert tracked.first == 0.0 and tracked.last - tracked.first >= 0.25
    assert sampler.usage().prism[tracked.name] >= 0.25


def test_the_replay_reference_takes_each_child_process_at_its_own_word():
    used = cost.Usage(5.0, {"python": 2.0, "replay order_search": 0.5}, {"postgres": 1.0})
    runs = {"order_search": {"cpu_seconds": 0.8}, "order_analytics": {"events": 10}}
    usage = replay.replay_usage(used, runs)
    assert usage.prism == {"replay order_search": 0.8, "bench process (order_analytics)": 2.0}
    assert usage.stores == {"postgres": 1.0}


def _costed(rate: int, total_ms: float) -> dict:
    return _run(rate, WITHIN) | {"cost": {"per_order": {"total_ms": total_ms}, "idle_seconds": 10}}


def test_cpu_goals_at_each_rate_and_no_higher_above_50_than_at_50():
    results = {"visibility": [_costed(20, 11.0), _costed(50, 7.5), _costed(100, 7.0), _costed(200, 9.0)]}
    rows = {row["goal"]: row for row in report_live.goals(results)}
    assert rows["CPU ms per order end to end at 50/s (net of idle)"]["measured"] == 7.5
    assert rows["CPU ms per order end to end at 20/s (net of idle)"]["target"] == 12.0
    at_200 = rows["CPU ms per order at 200/s, no higher than at 50/s"]
    assert (at_200["target"], at_200["measured"]) == (7.5, 9.0)
    assert rows["highest orders/s with every store within its p99 budget"]["measured"] == 200


def test_the_live_tables_show_each_rate_its_reference_and_every_part():
    floor_side = {"one": {"p50_ms": 0.5}, "many": {"per_s": 2000.0, "p99_ms": 30.0}}
    prism_side = {"one": {"p50_ms": 1.0}, "many": {"per_s": 1000.0, "p99_ms": 50.0}}
    results = {
        "visibility": [_costed(20, 11.0) | {"achieved_per_s": 20} for _ in range(1)],
        "replay": {"together": {"cpu": {"units": 900, "cpu_seconds": 0.9, "total_ms": 1.0}}},
        "read_your_writes": {
            "rate": 100,
            "clients": 4,
            "readers": {
                "search": {"reads": 9, "stale": 1, "failed": 1, "p50_ms": 5, "p99_ms": 9, "first_failure": "503"}
            },
        },
        "http_floor": {
            "order_detail": {"clients": 64, "same_bytes": True, "ratio": 0.5, "prism": prism_side, "floor": floor_side}
        },
        "memory_idle": [{"process": "api", "pid": 7, "rss_mb": 100.0, "pss_mb": 80.0}],
    }
    for run in results["visibility"]:
        run["cost"] |= {"idle_cpu_seconds": 1.0, "loaded_cpu_seconds": 2.0}
    text = "\n".join(report_live.tables(results))
    assert "replay/event" in text and "20/s" in text
    assert "first failure: 503" in text
    assert "order_detail" in text and "2000.0" in text
    assert "total" in text and "80.0" in text
    assert report_live.idle_pss_mb(results) == 80.0
