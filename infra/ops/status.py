"""Where each projection stands against the log's head, and what it has parked."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection, label
from projections.stores import registry
from workers import dead_letters, presence, runs, versions
from workers.locks import lock_key
from workers.versions import LIVE, NEXT, PREVIOUS
from write import event_log
from write.errors import StoreUnavailable
from write.partitions import BUCKETS, Partition

#: A projection within this many events and seconds of the head counts as live.
LIVE_EVENTS, LIVE_SECONDS = 2000, 5.0
#: The partition of a split version's own row, which rolls its partitions' rows up.
ALL_PARTITIONS = "all"


def of_a_version(partition: str | None) -> bool:
    """Whether a row with this ``partition`` is a version's (whole, or rolling up its partitions), not a partition's."""
    return partition in (None, ALL_PARTITIONS)


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    state: str
    version: int
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float
    dead_letters: int = 0
    last_batch_size: int | None = None
    last_batch_seconds: float | None = None
    #: For a version being built: the share of the log's positions it has passed, its rate and the time left.
    progress: float | None = None
    events_per_s: float | None = None
    eta_seconds: float | None = None
    #: Why the checkpoint could not be read (state ``unreadable``): most often, storage never set up.
    problem: str | None = None
    #: For a version split into partitions: ``2of8`` on each partition's row, ``all`` on the version's, which rolls
    #: them up (the lowest checkpoint, the lags and dead letters summed, the worst state).
    partition: str | None = None
    #: The process that holds the partition's lock now (``host/role/pid``), if any.
    holder: str | None = None
    #: The version's role: ``live``, ``next`` (being built, or rolled back to) or ``previous``.
    role: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


async def projection_status(log_engine: AsyncEngine, projections: dict[str, Projection]) -> list[ProjectionStatus]:
    parked = await dead_letters.counts(log_engine)
    async with log_engine.connect() as conn:
        head = await event_log.head(conn)
        last_runs = await runs.latest(conn)
        halts = await dead_letters.halted(conn)
        held = await presence.holders(conn)
        rows = []
        listed = {(v.projection, v.version): v for v in await versions.recorded(conn)}
        read = await asyncio.gather(*(_checkpoint(p) for p in projections.values()))
        lags = await _lags(conn, [(c, p.partition) for p, (c, _) in zip(projections.values(), read, strict=True)])
        for (name, projection), (checkpoint, problem), (lag, age) in zip(projections.items(), read, lags, strict=True):
            run = last_runs.get(name)
            version = listed.get((projection.name, projection.version))
            role = version.role if version else LIVE
            progress, rate, eta = (
                _build_progress(checkpoint, head, version.build_rate) if version and role == NEXT else _NOT_BUILDING
            )
            rows.append(
                ProjectionStatus(
                    name,
                    "unreadable" if problem else _state(role, name in halts, lag, age),
                    projection.version,
                    checkpoint,
                    head,
                    lag,
                    age,
                    parked.get(name, 0),
                    run.last_batch_size if run else None,
                    round(run.last_batch_seconds, 4) if run else None,
                    progress,
                    rate,
                    eta,
                    problem,
                    None if projection.partition.whole else str(projection.partition),
                    _holder(held, name),
                    role,
                )
            )
    return _rolled_up(rows, projections)


def _holder(held: dict[int, presence.Holder | None], label: str) -> str | None:
    key = lock_key(label)
    if key not in held:
        return None
    return str(held[key] or "another process")


#: States from the least to the most in need of an operator's eye.
_SEVERITY = ["previous", "live", "rebuilding", "catching up", "unreadable", "halted"]


def _rolled_up(rows: list[ProjectionStatus], projections: dict[str, Projection]) -> list[ProjectionStatus]:
    """Each split version's partitions (listed together, as ``active_projections`` builds them) after one row that
    rolls them up under the version's own label."""
    out: list[ProjectionStatus] = []
    for (version_label, whole), group in itertools.groupby(rows, key=lambda r: _version_of(projections[r.projection])):
        parts = list(group)
        out += parts if whole else [_roll_up(version_label, parts), *parts]
    return out


def _version_of(projection: Projection) -> tuple[str, bool]:
    return label(projection.name, projection.version), projection.partition.whole


def _roll_up(version_label: str, parts: list[ProjectionStatus]) -> ProjectionStatus:
    first, lowest = parts[0], min(parts, key=lambda r: r.checkpoint)
    return replace(
        lowest,
        projection=version_label,
        state=max((r.state for r in parts), key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else 0),
        version=first.version,
        lag_events=sum(r.lag_events for r in parts),
        lag_seconds=max(r.lag_seconds for r in parts),
        dead_letters=sum(r.dead_letters for r in parts),
        partition=ALL_PARTITIONS,
        holder=None,
        problem=next((r.problem for r in parts if r.problem), None),
    )


#: Events after the lowest checkpoint that ``applied_through`` looks at; past them a partition keeps its checkpoint.
WINDOW = 5000
_AFTER = text(
    "SELECT position, prism_bucket(tenant_id) FROM events WHERE position > :after ORDER BY position LIMIT :limit"
)


async def applied_through(conn, read: list[tuple[Partition, int]], head: int) -> list[int]:
    """Each partition's checkpoint as far as its own tenants go: the position just before its next event past its
    checkpoint, or the head if it has none. A partition that no commit of its tenants woke has nothing to apply:
    it counts as caught up, so a version's lowest partition says what every reader of it sees."""
    if not read:
        return []
    rows = (await conn.execute(_AFTER, {"after": min(cp for _, cp in read), "limit": WINDOW})).all()
    horizon = head if len(rows) < WINDOW else rows[-1][0]  # every event up to it is among the rows
    ahead: dict[Partition, list[int]] = {}
    for partition in {p for p, _ in read}:
        low, high = partition.buckets
        ahead[partition] = [position for position, b in rows if low <= b < high]
    found = []
    for partition, checkpoint in read:
        positions = ahead[partition]
        later = positions[bisect.bisect_right(positions, checkpoint) :]
        found.append(max(checkpoint, later[0] - 1 if later else horizon))
    return found


async def _checkpoint(projection: Projection) -> tuple[int, str | None]:
    """The checkpoint, or 0 and why it could not be read when its store refuses the read (storage never set up, as
    before the first ``prism serve``): one such projection does not hide the others. A store that is down raises."""
    try:
        return await projection.checkpoint(), None
    except Exception as error:
        failure = registry.translate(error, projection.store)
        if failure is None or isinstance(failure, StoreUnavailable):
            raise
        return 0, failure.message


#: Per (checkpoint, first bucket, bucket past the last): the events of the partition's tenants after the checkpoint,
#: and the oldest's time; one statement for every version and partition, as the log's index on positions serves each.
_LAGS = text(
    """
SELECT n.count, n.oldest
FROM unnest(CAST(:checkpoints AS bigint[]), CAST(:lows AS int[]), CAST(:highs AS int[])) WITH ORDINALITY
    AS v(checkpoint, low, high, i)
CROSS JOIN LATERAL (
    SELECT count(*) AS count, min(occurred_at) AS oldest FROM events
    WHERE position > v.checkpoint
      AND (v.high - v.low = :buckets OR prism_bucket(tenant_id) BETWEEN v.low AND v.high - 1)
) n
ORDER BY v.i"""
)


async def _lags(conn, read: list[tuple[int, Partition]]) -> list[tuple[int, float]]:
    """For each (checkpoint, partition): the events of the partition's tenants after the checkpoint, and the age in
    seconds of the oldest of them."""
    if not read:
        return []
    bounds = [partition.buckets for _, partition in read]
    found = await conn.execute(
        _LAGS,
        {
            "checkpoints": [checkpoint for checkpoint, _ in read],
            "lows": [low for low, _ in bounds],
            "highs": [high for _, high in bounds],
            "buckets": BUCKETS,
        },
    )
    now = datetime.now(UTC)
    return [(count, round(max((now - oldest).total_seconds(), 0.0), 3) if oldest else 0.0) for count, oldest in found]


#: The build columns of a version not being built.
_NOT_BUILDING = (None, None, None)


def _build_progress(checkpoint: int, head: int, rate: float | None) -> tuple[float, float | None, float | None]:
    share = round(min(checkpoint / head, 1.0), 4) if head else 1.0
    if not rate:
        return share, None, None
    return share, round(rate, 1), round(max(head - checkpoint, 0) / rate, 1)


def _state(role: str, halted: bool, lag: int, age: float) -> str:
    if halted:
        return "halted"
    if role != LIVE:
        return {NEXT: "rebuilding", PREVIOUS: "previous"}.get(role, role)
    return "live" if lag <= LIVE_EVENTS and age <= LIVE_SECONDS else "catching up"


def table(rows: list[ProjectionStatus]) -> str:
    held = any(r.holder for r in rows)
    lines = [
        f"{'projection':<30}{'state':<13}{'checkpoint':>11}{'head':>11}{'lag events':>12}{'lag s':>9}"
        f"{'dead':>6}{'last batch':>12}  build" + ("      held by" if held else "")
    ]
    for r in rows:
        batch = f"{r.last_batch_size}/{r.last_batch_seconds:.3f}s" if r.last_batch_size is not None else "-"
        shown = r.projection if of_a_version(r.partition) else f"  {r.projection}"
        holder = f"  {r.holder or '-'}" if held else ""
        lines.append(
            f"{shown:<30}{r.state:<13}{r.checkpoint:>11}{r.head:>11}{r.lag_events:>12}"
            f"{r.lag_seconds:>9.2f}{r.dead_letters:>6}{batch:>12}  {_build_column(r):<10}{holder}"
        )
    made = "(its storage is made by `prism serve` or `make demo`)"
    lines += [f"{r.projection}: {r.problem} {made}" for r in rows if r.problem]
    return "\n".join(lines)


def _build_column(r: ProjectionStatus) -> str:
    if r.progress is None:
        return "-"
    rate = f" {r.events_per_s:,.0f} ev/s ETA {r.eta_seconds:,.0f}s" if r.events_per_s else ""
    return f"{r.progress:.0%}{rate}"


def process_table(processes: list[dict]) -> str:
    """The processes of a running ``prism serve``: what each is, whether it runs (an on-demand one may be ``idle``),
    how often it was restarted."""
    now = datetime.now(UTC).timestamp()
    lines = [f"{'process':<34}{'pid':>8}  {'state':<12}{'restarts':>9}{'up s':>10}"]
    for p in processes:
        pid = "-" if p["pid"] is None else str(p["pid"])
        up = f"{now - p['since']:.0f}" if p["state"] == "running" else "-"
        lines.append(f"{p['name']:<34}{pid:>8}  {p['state']:<12}{p['restarts']:>9}{up:>10}")
    return "\n".join(lines)
