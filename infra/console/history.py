"""What the operator console shows, sampled every few seconds by one process and kept beside the log.

One round, in whichever process of any host takes the sampling lock first: each version's status (the rows of
``GET /projections``), the stores' health and the tenants, written as the console's latest state; each row's lag
appended to the history, the part older than the window trimmed. The console then reads two small tables instead
of every store, so its data route stays cheap whoever asks and however often, and the charts need no metrics server.
Each host's ``prism serve`` processes are published beside them (``hosts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.bootstrap import active_projections
from infra.console import hosts
from infra.ops.status import ALL_PARTITIONS, ProjectionStatus, of_a_version, projection_status
from infra.processes.supervisor import running_supervisor
from infra.settings import Settings
from projections.base import Projection
from projections.stores import registry
from projections.stores.adapter import describe
from projections.stores.registry import Stores
from workers import versions
from write.partitions import SEPARATOR
from write.schema import console_samples as samples
from write.schema import console_state as state

log = logging.getLogger("prism.console")

#: The advisory lock whose holder samples this round (any other process skips it).
SAMPLER_LOCK = 0x5052_4953_4D43  # "PRISMC"
#: The key of the whole status in ``console_state`` (each host's processes are under ``hosts.PREFIX``).
STATUS_KEY = "*"
#: Tenants listed, the busiest (most behind, then most orders) first.
TENANTS_SHOWN = 200
#: Events past the lowest live checkpoint looked at for the tenants' lag; past them a tenant's lag is "at least".
TENANT_WINDOW = 5000

_TAKE_TURN = text("SELECT pg_try_advisory_xact_lock(:key)")
_TENANTS = text("SELECT id, name FROM tenants")
_ORDERS = text("SELECT tenant_id, count(*) AS orders FROM orders GROUP BY tenant_id")
#: How often the orders are counted again (every order is read).
ORDERS_EVERY_SECONDS = 60.0
_PARKED = text(
    "SELECT event->>'tenant_id' AS tenant, count(*) FROM projection_dead_letters WHERE status = 'parked' GROUP BY 1"
)
#: Each tenant's events after the checkpoint of the slowest live version of its buckets' segment (segments do not
#: overlap, so an event counts once), within a window of positions.
_PENDING = text(
    """
SELECT e.tenant_id, count(*) AS pending
FROM events e
JOIN unnest(CAST(:lows AS int[]), CAST(:highs AS int[]), CAST(:checkpoints AS bigint[])) AS v(low, high, checkpoint)
  ON prism_bucket(e.tenant_id) >= v.low AND prism_bucket(e.tenant_id) < v.high AND e.position > v.checkpoint
WHERE e.position > :after AND e.position <= :after + :window
GROUP BY e.tenant_id"""
)
_VISIBLE = text("SELECT projection, visible_p50, visible_p99 FROM projection_runs")


async def sample(engine: AsyncEngine, stores: Stores, settings: Settings) -> bool:
    """One round, unless another process holds the turn or sampled less than a round ago; whether this one did."""
    every, keep = settings.console_sample_seconds, settings.console_history_seconds
    async with engine.begin() as conn:
        if not (await conn.execute(_TAKE_TURN, {"key": SAMPLER_LOCK})).scalar():
            return False
        last = (await conn.execute(select(state.c.body).where(state.c.key == STATUS_KEY))).scalar()
        now = datetime.now(UTC)
        if last is not None and now.timestamp() - last["sampled_at"] < every * 0.8:
            return False
        body, rows = await _status(engine, stores, settings, last, now)
        if rows:  # versions and partitions: the overview charts the first, a version's partitions chart on demand
            await conn.execute(insert(samples).on_conflict_do_nothing(), [_sample(now, r) for r in rows])
        await conn.execute(delete(samples).where(samples.c.at < now - timedelta(seconds=keep)))
        await conn.execute(delete(state).where(state.c.at < now - timedelta(seconds=keep)))
        await hosts.put(conn, STATUS_KEY, {**body, "sampled_at": now.timestamp(), "every": every})
    return True


def _sample(at: datetime, row: ProjectionStatus) -> dict[str, Any]:
    return {
        "at": at,
        "label": row.projection,
        "checkpoint": row.checkpoint,
        "head": row.head,
        "lag_events": row.lag_events,
        "lag_seconds": row.lag_seconds,
    }


async def _status(
    engine: AsyncEngine, stores: Stores, settings: Settings, last: dict | None, now: datetime
) -> tuple[dict, list[ProjectionStatus]]:
    """The status rows (none when a store is down: the health says which), the stores' health and the tenants."""
    health = await registry.ping_all(stores, settings.store_timeout_seconds)
    problem, rows, shown = None, [], {}
    try:
        shown = await active_projections(engine, stores, (versions.LIVE, versions.NEXT, versions.PREVIOUS))
        rows = await projection_status(engine, shown)
    except Exception as error:
        if registry.translate(error) is None:
            raise
        problem = describe(error)
    async with engine.connect() as conn:
        visible = _visible({r.projection: (r.visible_p50, r.visible_p99) for r in await conn.execute(_VISIBLE)}, rows)
        orders = await _orders(conn, last, now)
        tenants = await _tenants(conn, rows, shown, orders["counts"])
    return {
        "projections": [{**r.as_dict(), "visible": visible.get(r.projection)} for r in rows],
        "problem": problem,
        "stores": {name: None if error is None else describe(error) for name, error in health.items()},
        "tenants": tenants,
        "orders": orders,
    }, rows


def _visible(recorded: dict[str, tuple], rows: list[ProjectionStatus]) -> dict[str, tuple]:
    """Each row's recent commit-to-visible (p50, p99); a split version's: the middle of its partitions' medians and
    the worst of their 99th percentiles."""
    found = dict(recorded)
    for row in rows:
        if row.partition == ALL_PARTITIONS:
            parts = [recorded[label] for label in recorded if _partition_of(label, row.projection)]
            parts = [p for p in parts if p[0] is not None]
            if parts:
                medians = sorted(p[0] for p in parts)
                found[row.projection] = (medians[len(medians) // 2], max(p[1] for p in parts))
    return found


async def _orders(conn, last: dict | None, now: datetime) -> dict[str, Any]:
    """Orders per tenant: counted again once a minute (a scan of every order), else those of the last round."""
    kept = (last or {}).get("orders")
    if kept and now.timestamp() - kept["counted_at"] < ORDERS_EVERY_SECONDS:
        return kept
    return {"counted_at": now.timestamp(), "counts": {row.tenant_id: row.orders for row in await conn.execute(_ORDERS)}}


def _slowest(live: list[tuple[tuple[int, int], int]]) -> list[tuple[int, int, int]]:
    """The buckets cut where any live partition starts or ends, each segment with the lowest checkpoint of the
    partitions over it: (first bucket, bucket past the last, checkpoint)."""
    cuts = sorted({edge for (low, high), _ in live for edge in (low, high)})
    return [
        (low, high, min(checkpoint for (start, end), checkpoint in live if start <= low and high <= end))
        for low, high in itertools.pairwise(cuts)
        if any(start <= low and high <= end for (start, end), _ in live)
    ]


async def _tenants(
    conn, rows: list[ProjectionStatus], shown: dict[str, Projection], orders: dict[str, int]
) -> list[dict[str, Any]]:
    """Each tenant's orders, parked events, and events not yet applied by the slowest live version of its buckets."""
    live = [
        (shown[r.projection].partition.buckets, r.checkpoint)
        for r in rows
        if r.projection in shown and r.state not in ("rebuilding", "previous", "unreadable")
    ]
    pending: dict[str, int] = {}
    if live:
        segments = _slowest(live)
        found = await conn.execute(
            _PENDING,
            {
                "lows": [low for low, _, _ in segments],
                "highs": [high for _, high, _ in segments],
                "checkpoints": [checkpoint for _, _, checkpoint in segments],
                "after": min(checkpoint for _, _, checkpoint in segments),
                "window": TENANT_WINDOW,
            },
        )
        pending = {row.tenant_id: row.pending for row in found}
    parked = {row.tenant: row.count for row in await conn.execute(_PARKED)}
    found = [
        {
            "tenant": t.id,
            "name": t.name,
            "orders": orders.get(t.id, 0),
            "lag_events": pending.get(t.id, 0),
            "dead": parked.get(t.id, 0),
        }
        for t in await conn.execute(_TENANTS)
    ]
    found.sort(key=lambda t: (-t["lag_events"], -t["dead"], -t["orders"], t["tenant"]))
    return found[:TENANTS_SHOWN]


async def keep_sampling(engine: AsyncEngine, stores: Stores, settings: Settings, samples_here: bool) -> None:
    """Where ``samples_here`` (a process that reads every store), take the sampling turn when it is free; and
    publish this process as its host's, where no ``prism serve`` supervises it (a supervisor publishes its own
    processes). A failed round is logged once per cause and tried again next round."""
    every, last_problem = settings.console_sample_seconds, None
    while True:
        started = time.monotonic()
        try:
            if running_supervisor(settings) is None:
                await hosts.publish(engine, settings)
            if samples_here:
                await sample(engine, stores, settings)
            last_problem = None
        except Exception as error:  # noqa: BLE001  # the console is never a reason for the process to stop
            problem = describe(error)
            if problem != last_problem:
                log.warning("the console's sample failed: %s", problem)
            last_problem = problem
        await asyncio.sleep(max(every - (time.monotonic() - started), 0.05))


@contextlib.asynccontextmanager
async def sampling(engine: AsyncEngine, stores: Stores, settings: Settings, samples_here: bool):
    """``keep_sampling`` in the background for as long as the block runs."""
    task = asyncio.create_task(keep_sampling(engine, stores, settings, samples_here), name="prism-console-sampler")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Overview:
    """The console's data answers, as JSON. The overview: the latest status, each host's processes, and the lag series
    of each version in that status over the window; a version's partitions: the lag series of each. The series change
    only when a sample lands, so they are kept encoded until the next one: most answers read the small state table
    only, and the series are built by Postgres, as the text of the answer."""

    def __init__(self) -> None:
        self._sampled_at: float | None = None
        #: The encoded series of the sample at ``_sampled_at``: the versions' (under None), and each version's
        #: partitions' (under the version's label).
        self._series: dict[str | None, bytes] = {}

    async def answer(self, engine: AsyncEngine, settings: Settings) -> bytes:
        async with engine.connect() as conn:
            kept = (await conn.execute(select(state.c.key, state.c.at, state.c.body))).all()
            status = next((body for key, _, body in kept if key == STATUS_KEY), None)
            series = await self._kept(conn, settings, status, None)
        processes = [
            {**body, "seen": at.timestamp()}
            for key, at, body in sorted(kept, key=lambda k: k[0])
            if key.startswith(hosts.PREFIX)
        ]
        rest = orjson.dumps({"now": time.time(), "status": status, "hosts": processes})
        return rest[:-1] + b',"series":' + series + b"}"

    async def partitions(self, engine: AsyncEngine, settings: Settings, version: str) -> bytes:
        """The lag series of each partition of ``version`` (a version's label) in the latest status, by label: none
        when it is not split."""
        async with engine.connect() as conn:
            status = (await conn.execute(select(state.c.body).where(state.c.key == STATUS_KEY))).scalar()
            series = await self._kept(conn, settings, status, version)
        return b'{"series":' + series + b"}"

    async def _kept(self, conn, settings: Settings, status: dict | None, version: str | None) -> bytes:
        """The series of the versions in ``status`` (``version`` None) or of a version's partitions: read once per
        sample. Answers run concurrently: what one reads is kept only if no other has seen a newer sample meanwhile."""
        sampled_at = status["sampled_at"] if status else None
        if sampled_at != self._sampled_at:
            self._sampled_at, self._series = sampled_at, {}
        found = self._series.get(version)
        if found is None:
            rows = _rows(status)
            if version is None:
                labels = [row["projection"] for row in rows if of_a_version(row["partition"])]
            else:
                labels = [row["projection"] for row in rows if _partition_of(row["projection"], version)]
            found = await _series(conn, settings, labels)
            if self._sampled_at == sampled_at:
                self._series[version] = found
        return found


def _partition_of(label: str, version: str) -> bool:
    """Whether ``label`` names a partition of the version labelled ``version`` (``projections.base.label``)."""
    return label.startswith(version + SEPARATOR)


def _rows(status: dict | None) -> list[dict]:
    return (status or {}).get("projections") or []


#: Each label's points over the window, oldest first, as the JSON the console reads: ``{label: {"t": [...],
#: "lag_seconds": [...], "lag_events": [...]}}``. Read along the primary key (label, at).
_SERIES = text(
    """
SELECT coalesce(json_object_agg(label, json_build_object('t', t, 'lag_seconds', seconds, 'lag_events', events)),
                '{}')::text
FROM (
  SELECT label, array_agg(round(extract(epoch FROM at)::numeric, 3) ORDER BY at) AS t,
         array_agg(lag_seconds ORDER BY at) AS seconds, array_agg(lag_events ORDER BY at) AS events
  FROM console_samples WHERE label = ANY(CAST(:labels AS text[])) AND at > :since GROUP BY label
) AS lines"""
)


async def _series(conn, settings: Settings, labels: list[str]) -> bytes:
    """The lag over the window of each of ``labels``, encoded (``_SERIES``)."""
    if not labels:
        return b"{}"
    since = datetime.now(UTC) - timedelta(seconds=settings.console_history_seconds)
    return (await conn.execute(_SERIES, {"labels": labels, "since": since})).scalar_one().encode()
