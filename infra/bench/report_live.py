"""The report's live-path part: CPU per order beside the replay's per event, commit-to-visible against each store's
budget, read-your-writes, the readers against their HTTP floor, ``prism serve``'s memory; and their goals."""

from __future__ import annotations

from typing import Any

from infra.bench.live import VISIBLE_BUDGETS_MS, highest_within

#: CPU ms per order end to end (every process, net of idle), by offered rate.
CPU_PER_ORDER_GOALS_MS = {50: 8.0, 20: 12.0}
#: Rates whose CPU per order should be no higher than at this one.
CPU_FLAT_FROM, CPU_FLAT_AT = 50, (100, 200)
VISIBLE_GOAL_RATE = 100
RYW_P99_GOAL_MS = 300
HIGHEST_RATE_GOAL = 250
#: Per reader measured against the HTTP floor: its req/s at least this share of the floor's.
FLOOR_RATIO_GOAL = 0.8
WRITE_FLOOR_CLIENTS, WRITE_FLOOR_RATIO_GOAL = 16, 0.5
IDLE_PSS_GOAL_MB = 800


def _run_at(results: dict, rate: int) -> dict | None:
    return next((r for r in results.get("visibility", []) if r["offered_per_s"] == rate), None)


def cpu_per_order(results: dict, rate: int) -> float | None:
    run = _run_at(results, rate)
    return None if run is None else run.get("cost", {}).get("per_order", {}).get("total_ms")


def replay_per_event(results: dict) -> float | None:
    return results.get("replay", {}).get("together", {}).get("cpu", {}).get("total_ms")


def idle_pss_mb(results: dict) -> float | None:
    rows = results.get("memory_idle")
    return round(sum(r["pss_mb"] for r in rows), 1) if rows else None


def _goal(goal: str, target: float, measured: float | None, higher: bool, reference: str | None = None) -> dict:
    row: dict[str, Any] = {"goal": goal, "target": target, "measured": measured, "higher_is_better": higher}
    if reference:
        row["reference"] = reference
    return row


def goals(results: dict) -> list[dict[str, Any]]:
    """The live path's goals; ``met`` is set by the caller, as for every goal."""
    per_event = replay_per_event(results)
    replay = f"replay {per_event} ms CPU/event" if per_event is not None else None
    rows = [
        _goal(
            f"CPU ms per order end to end at {rate}/s (net of idle)",
            target,
            cpu_per_order(results, rate),
            False,
            replay,
        )
        for rate, target in CPU_PER_ORDER_GOALS_MS.items()
    ]
    flat = cpu_per_order(results, CPU_FLAT_FROM)
    for rate in CPU_FLAT_AT:
        rows.append(
            _goal(
                f"CPU ms per order at {rate}/s, no higher than at {CPU_FLAT_FROM}/s",
                flat or 0.0,
                cpu_per_order(results, rate) if flat is not None else None,
                False,
                replay,
            )
        )
    at = _run_at(results, VISIBLE_GOAL_RATE)
    for name, budget in VISIBLE_BUDGETS_MS.items():
        store = (at or {}).get("stores", {}).get(name)
        missing = store is None or store["not_visible"]
        rows.append(
            _goal(
                f"commit-to-visible p99 ms at {VISIBLE_GOAL_RATE}/s, {name}",
                budget,
                None if missing else store["p99_ms"],
                False,
            )
        )
    ryw = (results.get("read_your_writes") or {}).get("readers", {})
    for name, row in ryw.items():
        rows.append(
            _goal(
                f"read-your-writes p99 ms at {VISIBLE_GOAL_RATE}/s, {name}",
                RYW_P99_GOAL_MS,
                None if row["failed"] or row["stale"] else row["p99_ms"],
                False,
            )
        )
    rows.append(
        _goal(
            "highest orders/s with every store within its p99 budget",
            HIGHEST_RATE_GOAL,
            highest_within(results.get("visibility", [])),
            True,
        )
    )
    for name, row in (results.get("http_floor") or {}).items():
        rows.append(
            _goal(
                f"{name} req/s / HTTP floor's, {row['clients']} clients",
                FLOOR_RATIO_GOAL,
                row["ratio"],
                True,
                f"floor {row['floor']['many']['per_s']} req/s",
            )
        )
    write = next((r for r in results.get("write_path", []) if r["clients"] == WRITE_FLOOR_CLIENTS), None)
    if write is not None and write.get("floor"):
        ratio = round(write["per_s"] / write["floor"]["per_s"], 2) if write["floor"]["per_s"] else None
        rows.append(
            _goal(
                f"PlaceOrder/s / statement floor at {WRITE_FLOOR_CLIENTS} clients",
                WRITE_FLOOR_RATIO_GOAL,
                ratio,
                True,
                f"floor {write['floor']['per_s']} orders/s",
            )
        )
    rss = sum(r["rss_mb"] for r in results.get("memory_idle") or [])
    rows.append(
        _goal(
            "prism serve idle, PSS MB (all processes)",
            IDLE_PSS_GOAL_MB,
            idle_pss_mb(results),
            False,
            f"RSS {rss:.0f} MB",
        )
    )
    return rows


def tables(results: dict) -> list[str]:
    out: list[str] = []
    out += cost_table(results)
    out += visibility_table(results)
    out += ryw_table(results)
    out += floor_table(results)
    out += memory_table(results)
    return out


def cost_table(results: dict) -> list[str]:
    runs = [r for r in results.get("visibility", []) if "cost" in r]
    if not runs:
        return []
    reference = results.get("replay", {}).get("together", {}).get("cpu", {})
    names = sorted({n for r in runs for n in r["cost"]["per_order"].get("processes_ms", {})})
    stores = sorted({n for r in runs for n in r["cost"]["per_order"].get("stores_ms", {})})
    head = f"  {'CPU ms per order':<34}" + "".join(f"{str(r['offered_per_s']) + '/s':>11}" for r in runs)
    out = [
        "",
        "Live path: CPU per order end to end (from /proc, from the load's start until every store has its last order, "
        "net of the same processes idle as long)",
        head + f"  {'replay/event':>13}",
    ]

    def line(label: str, key: str, name: str | None = None) -> str:
        def cell(block: dict) -> str:
            value = block.get(key) if name is None else block.get(key, {}).get(name)
            return f"{value:>11.3f}" if value is not None else f"{'-':>11}"

        cells = "".join(cell(r["cost"]["per_order"]) for r in runs)
        return f"  {label:<34}{cells}  {cell(reference):>13}"

    out += [line(f"prism {n}", "processes_ms", n) for n in names]
    out += [line(f"store {n}", "stores_ms", n) for n in stores]
    out += [line("Prism total", "prism_ms"), line("stores total", "stores_total_ms"), line("all", "total_ms")]
    out.append(
        f"  {'orders (replay: events)':<34}"
        + "".join(f"{r['cost']['per_order'].get('units', 0):>11}" for r in runs)
        + f"  {reference.get('units', '-'):>13}"
    )
    out.append(f"  {'window s (idle s)':<34}" + "".join(f"{_window(r):>11}" for r in runs))
    out.append(
        f"  {'CPU s idle / loaded':<34}"
        + "".join(f"{_idle_loaded(r):>11}" for r in runs)
        + f"  {reference.get('cpu_seconds', '-'):>13}"
    )
    out.append(
        "  net of idle: a process that used more idle than loaded (background work of an earlier load, e.g. "
        "ClickHouse merges, or other work on the machine) shows negative"
    )
    out.append(
        "  replay/event: the whole log replayed into all projections at once (bench replay processes and stores); "
        "replay per-process rows are the replay's own processes"
    )
    if reference.get("processes_ms"):
        out.append(
            "  replay processes (ms/event): " + ", ".join(f"{n} {v}" for n, v in reference["processes_ms"].items())
        )
    return out


def visibility_table(results: dict) -> list[str]:
    runs = results.get("visibility", [])
    out = [
        "",
        "Commit-to-visible p50 / p99 ms by offered rate, against each store's p99 budget",
        f"  {'projection':<22} {'budget':>7}" + "".join(f"{r['offered_per_s']:>14}/s" for r in runs),
    ]
    for name, budget in VISIBLE_BUDGETS_MS.items():
        cells = ""
        for r in runs:
            s = r["stores"].get(name) or {}
            text = f"{_ms0(s.get('p50_ms'))} / {_ms0(s.get('p99_ms'))}" + ("!" if s.get("not_visible") else "")
            cells += f"{text:>16}"
        out.append(f"  {name:<22} {budget:>7}{cells}")
    out.append(
        f"  {'achieved/s, errors':<30}"
        + "".join(f"{str(r['achieved_per_s']) + ', ' + str(r['errors']):>16}" for r in runs)
    )
    out.append(f"  highest rate with every store within budget: {highest_within(runs) or 'none'} orders/s")
    out.append("  !: some writes never became visible in that store before the run ended")
    return out


def ryw_table(results: dict) -> list[str]:
    ryw = results.get("read_your_writes")
    if not ryw:
        return []
    out = [
        "",
        f"Read-your-writes: {ryw['clients']} clients beside {ryw['rate']} orders/s; each reads its order on every "
        "reader with min_position = its command's position (ms from the command's answer)",
        f"  {'reader':<14} {'reads':>6} {'p50 ms':>8} {'p99 ms':>8} {'stale':>6} {'failed':>7}",
    ]
    for name, r in ryw["readers"].items():
        out.append(
            f"  {name:<14} {r['reads']:>6} {_n(r['p50_ms']):>8} {_n(r['p99_ms']):>8} {r['stale']:>6} {r['failed']:>7}"
            + (f"  first failure: {r['first_failure'][:100]}" if r.get("first_failure") else "")
        )
    return out


def floor_table(results: dict) -> list[str]:
    floor = results.get("http_floor")
    if not floor:
        return []
    out = [
        "",
        "Readers beside the HTTP floor (bare ASGI app on the same uvicorn, same processes and options, same store read "
        "and bytes)",
        f"  {'reader':<14} {'N':>4} {'req/s':>8} {'floor':>8} {'ratio':>6} {'p50 ms':>7} {'floor':>7} "
        f"{'p99 ms':>7} {'floor':>7} {'same bytes':>11}",
    ]
    for name, r in floor.items():
        p, f = r["prism"], r["floor"]
        out.append(
            f"  {name:<14} {r['clients']:>4} {p['many']['per_s']:>8} {f['many']['per_s']:>8} {_n(r['ratio']):>6} "
            f"{_n(p['one']['p50_ms']):>7} {_n(f['one']['p50_ms']):>7} {_n(p['many']['p99_ms']):>7} "
            f"{_n(f['many']['p99_ms']):>7} {r['same_bytes']!s:>11}"
        )
    return out


def memory_table(results: dict) -> list[str]:
    rows = results.get("memory_idle")
    if not rows:
        return []
    out = ["", "prism serve idle: memory per process (MB, /proc/PID/smaps_rollup)"]
    out.append(f"  {'process':<32} {'pid':>7} {'RSS':>8} {'PSS':>8}")
    out += [f"  {r['process']:<32} {r['pid']:>7} {r['rss_mb']:>8.1f} {r['pss_mb']:>8.1f}" for r in rows]
    rss = sum(r["rss_mb"] for r in rows)
    out.append(f"  {'total':<32} {'':>7} {rss:>8.1f} {idle_pss_mb(results):>8.1f}")
    return out


def _idle_loaded(run: dict) -> str:
    scale = run["cost"]["per_order"].get("seconds", 0) / (run["cost"]["idle_seconds"] or 1)
    return f"{run['cost']['idle_cpu_seconds'] * scale:.1f}/{run['cost']['loaded_cpu_seconds']:.1f}"


def _window(run: dict) -> str:
    return f"{run['cost']['per_order'].get('seconds', 0):.1f} ({run['cost']['idle_seconds']:.0f})"


def _ms0(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
