"""Where each projection stands against the log's head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection
from write import event_log
from write.schema import events


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


async def projection_status(log_engine: AsyncEngine, projections: dict[str, Projection]) -> list[ProjectionStatus]:
    async with log_engine.connect() as conn:
        head = await event_log.head(conn)
        rows = []
        for name, projection in projections.items():
            checkpoint = await projection.checkpoint()
            oldest = (await conn.execute(select(events.c.occurred_at).where(events.c.position > checkpoint)
                                         .order_by(events.c.position).limit(1))).scalar()
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
            lag = (await conn.execute(select(func.count()).select_from(events)
                                      .where(events.c.position > checkpoint))).scalar_one()
            rows.append(ProjectionStatus(name, checkpoint, head, lag, round(max(age, 0.0), 3)))
    return rows


def table(rows: list[ProjectionStatus]) -> str:
    lines = [f"{'projection':<22}{'checkpoint':>12}{'head':>12}{'lag events':>12}{'lag s':>9}"]
    lines += [f"{r.projection:<22}{r.checkpoint:>12}{r.head:>12}{r.lag_events:>12}{r.lag_seconds:>9.2f}" for r in rows]
    return "\n".join(lines)
