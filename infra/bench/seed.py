"""A large, valid history written fast: the bulk path a data import would take.

Tenants, customers and products go through the command bus. Orders are decided by
the domain model, then written in chunks: each chunk's rows and events are copied
in one transaction under the log's append lock, so the state and its events land
together and positions keep commit order, as with any command; then the tables are
vacuumed, as after any bulk load. The chunks are
decided in a pool of processes (the domain's arithmetic and the snapshots are most
of the cost) while this one copies the chunks already decided.
"""

from __future__ import annotations

import asyncio
import csv
import io
import multiprocessing
import os
import random
import uuid
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from write import commands as c
from write import domain, event_log, snapshots
from write import events as e
from write.bus import CommandBus
from write.event_log import APPEND_LOCK_KEY, NOTIFY_CHANNEL

FIRST = ["Ana", "José", "Nora", "Liam", "Maya", "Omar", "Zoë", "Ivan", "Chen", "Sofía", "Ada", "Björn"]
LAST = ["Álvarez", "Weber", "Okafor", "Smith", "Nguyen", "Rossi", "Müller", "Kowalski", "Tanaka", "Silva"]
KINDS = ["Widget", "Gadget", "Sprocket", "Gizmo", "Doohickey", "Flange", "Bracket", "Lamp", "Kettle", "Blender"]
GRADES = ["Lite", "Plus", "Pro", "Max", "Mini"]
#: Order events beside OrderPlaced: one order in eight is confirmed; of those, some ship and some are cancelled.
LIFECYCLE = ((0.12, "confirm"), (0.06, "ship"), (0.02, "cancel"))
EVENT_COLUMNS = (
    "event_id",
    "tenant_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "type",
    "schema_version",
    "occurred_at",
    "payload",
)


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    name: str
    email: str


@dataclass(frozen=True)
class Good:
    id: uuid.UUID
    name: str
    price: Decimal


@dataclass
class Catalogue:
    """What the orders are placed against, per tenant."""

    tenant: str
    customers: list[Person]
    products: list[Good]


@dataclass(frozen=True)
class Seeded:
    tenants: list[str]
    customers: dict[str, list[str]]
    products: dict[str, list[str]]
    orders: dict[str, list[str]]
    order_lines: int
    events: int
    head: int


async def seed(
    engine: AsyncEngine,
    bus: CommandBus,
    tenants: int,
    customers: int,
    products: int,
    orders: int,
    lines: tuple[int, int] = (3, 7),
    chunk: int = 2000,
    seed_value: int = 7,
) -> Seeded:
    """``orders`` orders over ``tenants`` tenants with ``customers`` and ``products`` each."""
    rng = random.Random(seed_value)
    tag = uuid.uuid4().hex[:4]
    catalogues = [await _catalogue(bus, engine, f"bench{n}-{tag}", customers, products, rng) for n in range(tenants)]
    placed: dict[str, list[str]] = {cat.tenant: [] for cat in catalogues}
    line_count = event_count = 0
    now = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[asyncio.Future] = deque()

        async def land() -> None:
            nonlocal line_count, event_count
            decided = await pending.popleft()
            await _copy(engine, decided)
            for tenant_id, order_id in decided.ids:
                placed[tenant_id].append(order_id)
            line_count, event_count = line_count + decided.line_count, event_count + decided.event_count

        for index, start in enumerate(range(0, orders, chunk)):
            pending.append(
                loop.run_in_executor(
                    pool,
                    _decide,
                    catalogues,
                    start,
                    min(chunk, orders - start),
                    now,
                    lines,
                    seed_value * 1_000_003 + index,
                )
            )
            if len(pending) > 2 * workers:  # a few chunks decided ahead of the copy, not the whole history in memory
                await land()
        while pending:
            await land()
    await _settle(engine)
    async with engine.connect() as conn:
        head = await event_log.head(conn)
    return Seeded(
        [cat.tenant for cat in catalogues],
        {cat.tenant: [str(r.id) for r in cat.customers] for cat in catalogues},
        {cat.tenant: [str(r.id) for r in cat.products] for cat in catalogues},
        placed,
        line_count,
        event_count,
        head,
    )


@dataclass(frozen=True)
class Decided:
    """One chunk, ready to copy: orders, their lines and their events as CSV (encoded by the pool process)."""

    orders: bytes
    items: bytes
    events: bytes
    ids: list[tuple[str, str]]
    line_count: int
    event_count: int


def _decide(
    catalogues: list[Catalogue], start: int, count: int, now: datetime, lines: tuple[int, int], seed_value: int
) -> Decided:
    """A chunk of orders decided by the domain (in a pool process: plain, picklable data in and out)."""
    rng = random.Random(seed_value)
    batch = [_order(catalogues[(start + n) % len(catalogues)], rng, now, lines) for n in range(count)]
    stamp = datetime.now(UTC)
    items = [(o.id, ln.line_no, ln.product_id, ln.quantity, ln.unit_price) for o, _ in batch for ln in o.lines]
    logged = [
        (
            ev.event_id,
            o.tenant_id,
            ev.aggregate_type,
            ev.aggregate_id,
            ev.aggregate_version,
            ev.type,
            ev.schema_version,
            stamp,
            orjson.dumps(ev.payload).decode(),
        )
        for o, history in batch
        for ev in history
    ]
    return Decided(
        _csv(
            (
                o.id,
                o.tenant_id,
                o.customer_id,
                o.status,
                o.subtotal,
                o.discount_percent,
                o.discount,
                o.total,
                o.note,
                o.cancel_reason,
                o.placed_at,
                o.confirmed_at,
                o.shipped_at,
                o.cancelled_at,
                o.version,
            )
            for o, _ in batch
        ),
        _csv(items),
        _csv(logged),
        [(o.tenant_id, str(o.id)) for o, _ in batch],
        len(items),
        len(logged),
    )


def _csv(rows) -> bytes:
    """COPY's CSV: an unquoted empty field is NULL (the history has no empty strings)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def _catalogue(
    bus: CommandBus, engine: AsyncEngine, tenant: str, customers: int, products: int, rng: random.Random
) -> Catalogue:
    await bus.execute(c.RegisterTenant(tenant, f"Bench {tenant}"))
    gate = asyncio.Semaphore(16)

    async def run(command: c.Command) -> None:
        async with gate:
            await bus.execute(command)

    await asyncio.gather(
        *(
            run(c.RegisterCustomer(tenant, f"{rng.choice(FIRST)} {rng.choice(LAST)}", f"c{n}@{tenant}.example"))
            for n in range(customers)
        )
    )
    await asyncio.gather(
        *(
            run(
                c.AddProduct(
                    tenant,
                    f"{KINDS[n % len(KINDS)]} {GRADES[n % len(GRADES)]} {n}",
                    Decimal(rng.randint(199, 19999)) / 100,
                )
            )
            for n in range(products)
        )
    )
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT id, name, email FROM customers WHERE tenant_id = $1 ORDER BY email", (tenant,)
        )
        people = [Person(*row) for row in _rows_of(rows)]
        rows = await conn.exec_driver_sql(
            "SELECT id, name, price FROM products WHERE tenant_id = $1 ORDER BY name", (tenant,)
        )
        goods = [Good(*row) for row in _rows_of(rows)]
    return Catalogue(tenant, people, goods)


def _rows_of(rows: Any) -> Sequence[Any]:
    """The rows of the driver's own SQL: their types are the query's, which SQLAlchemy cannot see."""
    return rows.all()


def _order(
    cat: Catalogue, rng: random.Random, now: datetime, lines: tuple[int, int]
) -> tuple[domain.Order, list[e.NewEvent]]:
    """One order decided by the domain, with the events its history wrote."""
    buyer = rng.choice(cat.customers)
    chosen = rng.sample(cat.products, rng.randint(*lines))
    at = now - timedelta(seconds=rng.randint(0, 90 * 86400))
    order = domain.Order(
        uuid.uuid4(),
        cat.tenant,
        buyer.id,
        domain.PENDING,
        tuple(domain.Line(n, p.id, p.name, rng.randint(1, 5), p.price) for n, p in enumerate(chosen, start=1)),
        at,
    )
    history = [_event(order, buyer, e.ORDER_PLACED, shipping_address=None)]
    roll = rng.random()
    if roll < LIFECYCLE[0][0]:
        order = order.confirm(at + timedelta(hours=1))
        history.append(_event(order, buyer, e.ORDER_CONFIRMED))
        if roll < LIFECYCLE[1][0]:
            order = order.ship(at + timedelta(days=1))
            history.append(_event(order, buyer, e.ORDER_SHIPPED))
        elif roll < LIFECYCLE[1][0] + LIFECYCLE[2][0]:
            order = order.cancel("changed my mind", at + timedelta(hours=2))
            history.append(_event(order, buyer, e.ORDER_CANCELLED, reason="changed my mind"))
    return order, history


def _event(order: domain.Order, buyer, event_type: str, **extra) -> e.NewEvent:
    payload = {"order": snapshots.order(order, buyer), **extra}
    return e.NewEvent(
        e.ORDER, order.id, order.version, event_type, payload, schema_version=e.schema_version(event_type)
    )


async def _settle(engine: AsyncEngine) -> None:
    """VACUUM ANALYZE of what was copied, as after any bulk load. Without it the first
    reader of the log sets the hint bits of a million fresh rows, and autovacuum works
    through the same tables while the replay that follows is measured."""
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        await raw.execute("VACUUM (ANALYZE) orders, order_items, events")


async def _copy(engine: AsyncEngine, decided: Decided) -> None:
    """One transaction: the orders, their lines and their events, the events under the append lock."""
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction():
            await raw.copy_to_table(
                "orders",
                source=io.BytesIO(decided.orders),
                format="csv",
                columns=(
                    "id",
                    "tenant_id",
                    "customer_id",
                    "status",
                    "subtotal",
                    "discount_percent",
                    "discount",
                    "total",
                    "note",
                    "cancel_reason",
                    "placed_at",
                    "confirmed_at",
                    "shipped_at",
                    "cancelled_at",
                    "version",
                ),
            )
            await raw.copy_to_table(
                "order_items",
                source=io.BytesIO(decided.items),
                format="csv",
                columns=("order_id", "line_no", "product_id", "quantity", "unit_price"),
            )
            await raw.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
            await raw.copy_to_table("events", source=io.BytesIO(decided.events), format="csv", columns=EVENT_COLUMNS)
            await raw.execute("SELECT pg_notify($1, (SELECT max(position) FROM events)::text)", NOTIFY_CHANNEL)
