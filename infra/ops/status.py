"""Where each projection stands against the log's head, and what it has parked."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection
from projections.stores import registry
from workers import dead_letters, runs, versions
from workers.versions import LIVE, NEXT, PREVIOUS
from write import event_log
from write.errors import StoreUnavailable
from write.schema import events

#: A projection within this many events and seconds of the head counts as live.
LIVE_EVENTS, LIVE_SECONDS = 2000, 5.0


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

    def as_dict(self) -> dict:
        return asdict(self)


async def projection_status(log_engine: AsyncEngine, projections: dict[str, Projection]) -> list[ProjectionStatus]:
    parked = await dead_letters.counts(log_engine)
    async with log_engine.connect() as conn:
        head = await event_log.head(conn)
        last_runs = await runs.latest(conn)
        halts = await dead_letters.halted(conn)
        rows = []
        listed = {(v.projection, v.version): v for v in await versions.recorded(conn)}
        for name, projection in projections.items():
            checkpoint, problem = await _checkpoint(projection)
            lag, age = await _lag(conn, checkpoint)
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
                )
            )
    return rows


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


async def _lag(conn, checkpoint: int) -> tuple[int, float]:
    """Events after the checkpoint, and the age in seconds of the oldest of them."""
    count, oldest = (
        await conn.execute(select(func.count(), func.min(events.c.occurred_at)).where(events.c.position > checkpoint))
    ).one()
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return count, round(max(age, 0.0), 3)


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
    lines = [
        f"{'projection':<26}{'state':<13}{'checkpoint':>11}{'head':>11}{'lag events':>12}{'lag s':>9}"
        f"{'dead':>6}{'last batch':>12}  build"
    ]
    for r in rows:
        batch = f"{r.last_batch_size}/{r.last_batch_seconds:.3f}s" if r.last_batch_size is not None else "-"
        lines.append(
            f"{r.projection:<26}{r.state:<13}{r.checkpoint:>11}{r.head:>11}{r.lag_events:>12}"
            f"{r.lag_seconds:>9.2f}{r.dead_letters:>6}{batch:>12}  {_build_column(r)}"
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
