"""What ``prism bench`` prints and keeps: a table, the JSON of the run, and a chart of commit-to-visible latency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.bench import report_live
from infra.bench.chart import chart
from projections.registry import PROJECTIONS

#: How the report names each ``Stores`` client.
STORE_NAMES = {"redis": "Redis", "elasticsearch": "Elasticsearch", "clickhouse": "ClickHouse", "dashboards": "Postgres"}


def _labels() -> dict[str, str]:
    """Every registered projection's column in the report: its store's name, and its own when the store has more."""
    stores = [cls.store for cls in PROJECTIONS.values()]
    return {
        name: STORE_NAMES.get(cls.store, cls.store)
        + (f" ({name.split('_', 1)[0]})" if stores.count(cls.store) > 1 else "")
        for name, cls in PROJECTIONS.items()
    }


#: Every projection the bench measures, by name, with its column's label.
STORES = _labels()
VISIBLE_P99_MS = 250
REPLAY_GOALS = {
    "order_summaries": 25_000,
    "order_search": 8_000,
    "order_analytics": 25_000,
    "customer_dashboards": 25_000,
}
#: Per reader: its req/s at least this share of its store's own read's, at the same clients.
READER_RATIO_GOALS = {"order_detail": 0.5, "dashboard": 0.5, "search_typo": 0.8}
#: Per reader: p50 ms with one client.
READER_P50_GOALS_MS = {"order_detail": 0.5, "dashboard": 1.0}
#: Per reader: p99 ms at its clients.
READER_P99_GOALS_MS = {"search_typo": 100, "analytics_top_products": 150, "analytics_revenue": 150}


def sustained(results: dict) -> int | None:
    """The highest offered load that was met, every command answered, with p99 commit-to-visible within goal."""
    best = None
    for run in results.get("visibility", []):
        met = (
            run["achieved_per_s"] >= 0.95 * run["offered_per_s"]
            and not run["errors"]
            and all(
                s["not_visible"] == 0 and s["p99_ms"] is not None and s["p99_ms"] <= VISIBLE_P99_MS
                for s in run["stores"].values()
            )
        )
        if met:
            best = max(best or 0, run["offered_per_s"])
    return best


def _at(results: dict, rate: int) -> dict | None:
    return next((r for r in results.get("visibility", []) if r["offered_per_s"] == rate), None)


def _worst(results: dict, rate: int, key: str) -> float | None:
    """The slowest store's commit-to-visible figure at one offered load (None if a write never became visible)."""
    run = _at(results, rate)
    if run is None or any(s[key] is None or s["not_visible"] for s in run["stores"].values()):
        return None
    return max(s[key] for s in run["stores"].values())


def prism_cpu(run: dict) -> float:
    """% of one core used by Prism's own processes (``serve`` and its children) during one load."""
    return round(sum(v for name, v in run.get("cpu_percent", {}).items() if name.startswith("prism")), 1)


def goals(results: dict) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "goal": "orders/s sustained, p99 commit-to-visible <= 250 ms in all",
            "target": 1000,
            "measured": sustained(results),
            "higher_is_better": True,
        },
        {
            "goal": "commit-to-visible p99 ms at 250 orders/s, slowest store",
            "target": VISIBLE_P99_MS,
            "measured": _worst(results, 250, "p99_ms"),
            "higher_is_better": False,
        },
        {
            "goal": "commit-to-visible p50 ms at 100 orders/s, slowest store",
            "target": 50,
            "measured": _worst(results, 100, "p50_ms"),
            "higher_is_better": False,
        },
    ]
    at_100 = _at(results, 100)
    if at_100 is not None:
        rows.append(
            {
                "goal": "CPU of Prism's processes at 100 orders/s, % of one core",
                "target": 100,
                "measured": prism_cpu(at_100),
                "higher_is_better": True,
            }
        )
    rows += write_goals(results)
    rows += report_live.goals(results)
    for name, target in REPLAY_GOALS.items():
        rows.append(
            {
                "goal": f"replay into {STORES[name]} alone, events/s",
                "target": target,
                "measured": results["replay"]["alone"][name]["events_per_s"],
                "higher_is_better": True,
            }
        )
    rows += reader_goals(results["readers"])
    during = results.get("during_rebuild")
    if during:
        worst = (
            None
            if any(st["p99_ms"] is None or st["not_visible"] for st in during["stores"].values())
            else max(st["p99_ms"] for st in during["stores"].values())
        )
        rows.append(
            {
                "goal": f"live commit-to-visible p99 ms at {during['offered_per_s']}/s while all rebuild",
                "target": 1000,
                "measured": worst,
                "higher_is_better": False,
            }
        )
    together = results["replay"]["together"]
    rows.append(
        {
            "goal": f"whole log ({together['events']:,} events) into all at once, s",
            "target": 180,
            "measured": together["seconds"] if together["complete"] else None,
            "higher_is_better": False,
        }
    )
    rows.append(
        {
            "goal": "projection throughput / naive design",
            "target": 20,
            "measured": ratio(results),
            "higher_is_better": True,
        }
    )
    for row in rows:
        m = row["measured"]
        row["met"] = m is not None and (m >= row["target"] if row["higher_is_better"] else m <= row["target"])
    return rows


def reader_goals(readers: dict) -> list[dict]:
    rows = []
    for name, target in READER_RATIO_GOALS.items():
        rows.append(
            {
                "goal": f"{name} req/s / its store's, {readers[name]['clients']} clients",
                "target": target,
                "measured": readers[name]["ratio"],
                "higher_is_better": True,
            }
        )
    for name, target in READER_P50_GOALS_MS.items():
        rows.append(
            {
                "goal": f"{name} p50 ms, 1 client",
                "target": target,
                "measured": readers[name]["prism"]["one"]["p50_ms"],
                "higher_is_better": False,
            }
        )
    took = (readers["search_typo"].get("store") or {}).get("took_ms")
    rows.append(
        {
            "goal": "search_typo Elasticsearch took p50 ms, with highlights",
            "target": 10,
            "measured": took["p50"] if took else None,
            "higher_is_better": False,
        }
    )
    for name, target in READER_P99_GOALS_MS.items():
        rows.append(
            {
                "goal": f"{name} p99 ms, {readers[name]['clients']} clients",
                "target": target,
                "measured": readers[name]["prism"]["many"]["p99_ms"],
                "higher_is_better": False,
            }
        )
    return rows


def floor_ratio(run: dict) -> float | None:
    """Prism's PlaceOrder/s over the floor's (its statements on raw asyncpg) at the same clients."""
    floor = (run.get("floor") or {}).get("per_s")
    return round(run["per_s"] / floor, 2) if floor else None


def _write_at(results: dict, clients: int) -> dict | None:
    return next((r for r in results.get("write_path", []) if r["clients"] == clients), None)


def write_goals(results: dict) -> list[dict]:
    rows = []
    at_64, at_1 = _write_at(results, 64), _write_at(results, 1)
    if at_64 is not None:
        rows += [
            {
                "goal": "PlaceOrder/s at 64 clients over HTTP",
                "target": 1000,
                "measured": at_64["per_s"],
                "higher_is_better": True,
            },
            {
                "goal": "PlaceOrder p99 ms at 64 clients",
                "target": 100,
                "measured": at_64["p99_ms"],
                "higher_is_better": False,
            },
        ]
    widest = max(results.get("write_path", []), key=lambda r: r["clients"], default=None)
    # At 16 clients the live path's goals hold the floor ratio (report_live); another widest is held here.
    if widest is not None and widest.get("floor") and widest["clients"] != report_live.WRITE_FLOOR_CLIENTS:
        rows.append(
            {
                "goal": f"PlaceOrder/s / statement floor at {widest['clients']} clients",
                "target": 1.0,
                "measured": floor_ratio(widest),
                "higher_is_better": True,
            }
        )
    if at_1 is not None:
        rows.append(
            {
                "goal": "PlaceOrder p50 ms at 1 client",
                "target": 3,
                "measured": at_1["p50_ms"],
                "higher_is_better": False,
            }
        )
    return rows


def ratio(results: dict) -> float | None:
    naive = results["naive"]["events_per_s"]
    return round(results["replay"]["together"]["events_per_s"] / naive, 1) if naive else None


def table(results: dict) -> str:
    out = [
        f"prism bench ({results['mode']}), {results['seconds']:.0f} s, on {results['machine']['cores']} cores "
        f"({results['machine']['cpu']}), {results['machine']['memory_gib']} GiB",
        f"log: {results['seed']['events']:,} events, {results['seed']['orders']:,} orders, "
        f"{results['seed']['order_lines']:,} order lines (seeded in {results['seed']['seconds']} s)",
        "",
    ]
    out.append("Write path (PlaceOrder, 3 items): over HTTP, and its statements on raw asyncpg (the floor)")
    out.append(
        f"  {'clients':>8} {'cmds/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'floor/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'/ floor':>8} {'lock %':>7} {'idle %':>7}"
    )
    for r in results["write_path"]:
        floor = r.get("floor") or {"per_s": None, "p50_ms": None, "p99_ms": None}
        lock = r.get("append_lock") or {"held_percent": None, "holder_idle_percent": None}
        out.append(
            f"  {r['clients']:>8} {r['per_s']:>9} {_f(r['p50_ms'])} {_f(r['p99_ms'])} {r['errors']:>7}"
            f" {_f(floor['per_s']):>9} {_f(floor['p50_ms'])} {_f(floor['p99_ms'])} "
            f"{_ratio(floor_ratio(r))} {_f(lock['held_percent'], 7)} {_f(lock['holder_idle_percent'], 7)}"
        )
    out.append(
        "  lock %: samples in which a transaction held the append lock (Prism's run); idle %: of those, the "
        "holder was idle in transaction (its client had not sent COMMIT yet)"
    )
    out += ["", "Commit-to-visible, open loop (p50 / p95 / p99 ms)"]
    out.append(f"  {'offered':>8} {'achieved':>9} " + " ".join(f"{STORES[s]:>22}" for s in STORES))
    for r in results["visibility"]:
        cells = " ".join(f"{_triple(r['stores'][s]):>22}" for s in STORES)
        out.append(f"  {r['offered_per_s']:>8} {r['achieved_per_s']:>9} {cells}")
    out.append(f"  highest load with p99 <= {VISIBLE_P99_MS} ms in all: {sustained(results) or 'none'}")
    during = results.get("during_rebuild")
    if during:
        cells = " ".join(f"{_triple(during['stores'][s]):>22}" for s in STORES)
        out.append(
            f"  {during['offered_per_s']:>8} {during['achieved_per_s']:>9} {cells}  <- while prism serve "
            f"rebuilt all ({during['seconds']:.0f} s)"
        )
        out.append(
            "  the rebuilds over that window (events/s; the whole log at that rate, s): "
            + ", ".join(
                f"{STORES[name]} {'switched in, at least ' if b.get('switched') else ''}{b['events_per_s']:,} "
                f"({b['whole_log_s'] or '?'} s)"
                for name, b in during["rebuilds"].items()
            )
        )
    out += ["", "CPU per process during each load (% of one core, from /proc)"]
    for r in results["visibility"]:
        busiest = ", ".join(f"{name} {share:.0f}" for name, share in list(r.get("cpu_percent", {}).items())[:9])
        out.append(f"  {r['offered_per_s']:>6}/s  Prism {prism_cpu(r):.0f}: {busiest}")
    replay = results["replay"]
    together = replay["together"]
    out += [
        "",
        f"Replay of {replay['log_events']:,} events in batches of {replay['batch_size']:,} "
        f"(events/s). All at once, a process each: the whole log in {together['seconds']:.0f} s; "
        f"alone: each beside the served version, for at most {results['plan']['alone_seconds']} s",
        f"  {'store':<15} {'alone':>9} {'s':>6} {'all at once':>18} {'s':>6}",
    ]
    for name, label in STORES.items():
        alone, four = replay["alone"][name], together["per_store"][name]
        out.append(
            f"  {label:<15} {alone['events_per_s']:>9} {alone['seconds']:>6.0f} "
            f"{four['events_per_s']:>18} {four['seconds']:>6.0f}"
        )
    out.append(f"  {'all':<15} {'':>9} {'':>6} {together['events_per_s']:>18} {together['seconds']:>6.0f}")
    naive = results["naive"]
    out += [
        "",
        f"Naive design (one message per event and store, {naive['threads']} threads): "
        f"{naive['events_per_s']} events/s into all ({naive['events']:,} events, "
        f"{'finished' if naive['finished'] else 'cut at ' + str(naive['seconds']) + ' s'}); "
        f"Prism all at once / naive = {ratio(results)}x",
        "",
    ]
    out += readers_table(results["readers"])
    out += report_live.tables(results)
    out += ["", "Goals"]
    for g in results["goals"]:
        reference = f"  ({g['reference']})" if g.get("reference") else ""
        out.append(
            f"  {'met ' if g['met'] else 'MISS'} {g['goal']:<62} target {g['target']:>7}  measured {g['measured']}"
            + reference
        )
    return "\n".join(out)


def readers_table(readers: dict) -> list[str]:
    out = [
        "Readers beside their store's own read (same read, same clients, this process; p50 at 1 client, "
        "req/s and p99 at N)",
        f"  {'reader':<24} {'N':>4} {'req/s':>8} {'store':>8} {'ratio':>6} {'p50 ms':>7} {'store':>7}"
        f" {'p99 ms':>8} {'store':>8} {'errors':>7}",
    ]
    for name, r in readers.items():
        prism, store = r["prism"], r.get("store") or {}
        one, many = store.get("one") or {}, store.get("many") or {}
        out.append(
            f"  {name:<24} {r['clients']:>4} {prism['many']['per_s']:>8} {_f(many.get('per_s'))} "
            f"{_f(r['ratio'], 6, 2)} {_f(prism['one']['p50_ms'], 7, 2)} {_f(one.get('p50_ms'), 7, 2)} "
            f"{_f(prism['many']['p99_ms'])} {_f(many.get('p99_ms'))} "
            f"{prism['one']['errors'] + prism['many']['errors']:>7}"
        )
        if store.get("before_serve"):
            out.append(
                f"  {'':<24} store read made before prism serve started, on the version it serves "
                "(it holds the embedded ClickHouse while it runs)"
            )
        if store.get("took_ms"):
            out.append(
                f"  {'':<24} Elasticsearch took p50 {store['took_ms']['p50']} ms, p99 {store['took_ms']['p99']} ms"
            )
    return out


def _f(value, width: int = 8, digits: int = 1) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def _ratio(value: float | None) -> str:
    return f"{value:>8.2f}" if value is not None else f"{'-':>8}"


def _triple(s: dict) -> str:
    cells = [f"{s[k]:.0f}" if s[k] is not None else "-" for k in ("p50_ms", "p95_ms", "p99_ms")]
    return " / ".join(cells) + (f" ({s['not_visible']} missing)" if s["not_visible"] else "")


def write(results: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{results['started_at']}.json"
    path.write_text(json.dumps(results, indent=2))
    chart(results, path.with_suffix(".png"), STORES, VISIBLE_P99_MS)
    text = table(results)
    path.with_suffix(".md").write_text(f"# prism bench, {results['started_at']}\n\n```\n{text}\n```\n")
    print(text)
    print(f"\nwrote {path}, {path.with_suffix('.md')} and {path.with_suffix('.png')}")
    return path
