"""The analytics rollups: which of their rows a batch touches, and the statements that recompute exactly those rows.

Rows are recomputed from the facts, never incremented, so a replayed or redelivered
batch cannot count twice. A batch's cost follows what it changed, not the data held:
it recomputes the tenant's hours its orders were placed in from their facts
(``status_hours`` and ``product_hours``), then from those few rows the days of the
products its lines name (``product_days``). The
facts are sorted by tenant, day and hour, so a recompute reads only the granules of
the hours it touches. An order keeps its placing time and its lines their products,
so an order's rows never move from one key to another.

``order_hours`` and ``daily_orders`` are plain views over ``status_hours``: nothing recomputes them.

On a cluster the statements read and write the Distributed tables, which keep a tenant's
facts and rollup rows on one shard, and wait for their shards (``clickhouse_cluster``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from projections.layouts.order_analytics import Tables
from write import events as e
from write.events import StoredEvent

#: A tenant's hour: (tenant, day, hour of day), UTC.
Hour = tuple[str, date, int]
#: A tenant's product on a day: (tenant, day, product id), UTC.
ProductDay = tuple[str, date, str]


@dataclass
class Touched:
    """The rollup keys to recompute: ``None`` for all of them (a version made before its rollups)."""

    hours: set[Hour] | None = field(default_factory=set)
    products: set[ProductDay] | None = field(default_factory=set)


def touched(events: list[StoredEvent]) -> Touched:
    """The hours and product days whose orders a batch changes (pure)."""
    hours: set[Hour] = set()
    products: set[ProductDay] = set()
    for ev in events:
        if ev.type not in e.ORDER_EVENTS:
            continue
        order = ev.payload["order"]
        at = _utc(order["placed_at"])
        hours.add((ev.tenant_id, at.date(), at.hour))
        products.update((ev.tenant_id, at.date(), item["product_id"]) for item in order["items"])
    return Touched(hours, products)


def _utc(iso: str) -> datetime:
    at = datetime.fromisoformat(iso)
    return at.astimezone(UTC) if at.tzinfo else at


def forgotten_sql(t: Tables) -> tuple[str, str]:
    """What forgetting these orders (``%(ids)s``) touches, read before their facts go: their hours, and their
    product days."""
    return (
        f"SELECT DISTINCT tenant_id, toDate32(placed_at), toHour(placed_at) FROM {t.orders} WHERE order_id IN %(ids)s",
        f"SELECT DISTINCT tenant_id, toDate32(placed_at), toString(product_id) FROM {t.order_lines} "
        f"WHERE order_id IN %(ids)s",
    )


_VERSION = "toUnixTimestamp64Micro(now64(6))"
_LIVE = "status != 'cancelled'"
_ZERO = "toDecimal128(0, 2)"


def rollup_sql(t: Tables, keys: Touched) -> list[str]:
    """Statements that rewrite the rollup rows of ``keys`` from the facts, in order (``product_days`` reads
    ``product_hours``).

    Rows the facts no longer have (forgotten orders, a status no order of the hour has
    any more) are rewritten as zeros. The version is the time of the recompute: a later
    recompute has seen newer facts. A catch-up's keys (thousands of hours and product
    days) are recomputed by whole days instead, in statements of at most ``MAX_KEYS``
    keys each: a statement has a size limit, and a few whole days read once cost less
    than thousands of keys parsed.
    """
    hours, products = _grains(keys.hours, 2), _grains(keys.products, 2)
    statements = [_status_hours(t, condition) for condition in hours]
    statements += [_product_hours(t, condition) for condition in hours]
    statements += [_product_days(t, condition) for condition in products]
    if keys.hours is None or keys.products is None or len(keys.hours) + len(keys.products) > MAX_KEYS:
        return statements
    return [statement + _ONE_THREAD for statement in statements]


#: Most keys one statement names; past it, a set of keys is widened to whole days (and split if still larger).
MAX_KEYS = 1_000
#: A live batch's recompute reads a few thousand rows: a second thread (the engine's default on two cores) costs
#: more than it saves, more than doubling the statement's CPU.
_ONE_THREAD = "\n        SETTINGS max_threads = 1, max_insert_threads = 1"


@dataclass(frozen=True)
class _Keys:
    """Keys of one statement: full keys, or their first ``len`` parts (whole days); ``None`` for every row."""

    keys: list[tuple] | None
    width: int = 3


def _grains(keys: set | None, day_width: int) -> list[_Keys]:
    """The statements' key sets: one with every key, or whole days in chunks when there are too many."""
    if keys is None:
        return [_Keys(None)]
    if not keys:
        return []
    if len(keys) <= MAX_KEYS:
        return [_Keys(sorted(keys))]
    days = sorted({key[:day_width] for key in keys})
    return [_Keys(days[n : n + MAX_KEYS], day_width) for n in range(0, len(days), MAX_KEYS)]


def _in(columns: tuple[str, ...], keys: _Keys) -> str:
    """``columns`` (as many as the keys have parts) among ``keys`` (every row with None); the condition on the
    facts' sort key that lets a recompute read only the granules of its keys."""
    if keys.keys is None:
        return "1"
    return f"({', '.join(columns[: keys.width])}) IN ({', '.join(_tuple(key) for key in keys.keys)})"


def _tuple(key: tuple) -> str:
    return "(" + ", ".join(_literal(part) for part in key) + ")"


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):  # a literal the set converts to the column's type: a function call per key parsed
        return f"'{value.isoformat()}'"  # and analysed costs more than the read
    return quoted(str(value))


def quoted(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_FACT_HOURS = ("tenant_id", "toDate32(placed_at)", "toHour(placed_at)")
_ROLLUP_HOURS = ("tenant_id", "day", "hour")


def _status_hours(t: Tables, hours: _Keys) -> str:
    facts, kept, settings = _in(_FACT_HOURS, hours), _in(_ROLLUP_HOURS, hours), t.cluster.insert_settings
    return f"""INSERT INTO {t.status_hours} (tenant_id, day, hour, status, orders, discounted, revenue, discounts,
                                             subtotals, version){settings}
        SELECT tenant_id, day, hour, status, sum(orders), sum(discounted), sum(revenue), sum(discounts),
               sum(subtotals), {_VERSION}
        FROM (SELECT tenant_id, toDate32(placed_at) AS day, toHour(placed_at) AS hour, status, count() AS orders,
                     countIf(discount > 0) AS discounted, sum(total) AS revenue, sum(discount) AS discounts,
                     sum(subtotal) AS subtotals
              FROM {t.orders} FINAL WHERE {facts} GROUP BY tenant_id, day, hour, status
              UNION ALL
              SELECT tenant_id, day, hour, status, toUInt64(0), toUInt64(0), {_ZERO}, {_ZERO}, {_ZERO}
              FROM {t.status_hours} FINAL WHERE {kept})
        GROUP BY tenant_id, day, hour, status"""


def _product_hours(t: Tables, hours: _Keys) -> str:
    facts, kept, settings = _in(_FACT_HOURS, hours), _in(_ROLLUP_HOURS, hours), t.cluster.insert_settings
    return f"""INSERT INTO {t.product_hours} (tenant_id, day, hour, product_id, quantity, revenue, version){settings}
        SELECT tenant_id, day, hour, product_id, sum(quantity), sum(revenue), {_VERSION}
        FROM (SELECT tenant_id, toDate32(placed_at) AS day, toHour(placed_at) AS hour, product_id,
                     sumIf(quantity, {_LIVE}) AS quantity, sumIf(line_total, {_LIVE}) AS revenue
              FROM {t.order_lines} FINAL WHERE {facts} GROUP BY tenant_id, day, hour, product_id
              UNION ALL
              SELECT tenant_id, day, hour, product_id, toUInt64(0), {_ZERO} FROM {t.product_hours} FINAL WHERE {kept})
        GROUP BY tenant_id, day, hour, product_id"""


def _product_days(t: Tables, products: _Keys) -> str:
    """From the product hours just written (at most 24 rows a product and day)."""
    kept, settings = _in(("tenant_id", "day", "product_id"), products), t.cluster.insert_settings
    return f"""INSERT INTO {t.product_days} (tenant_id, day, product_id, quantity, revenue, version){settings}
        SELECT tenant_id, day, product_id, sum(quantity), sum(revenue), {_VERSION}
        FROM {t.product_hours} FINAL WHERE {kept}
        GROUP BY tenant_id, day, product_id"""
