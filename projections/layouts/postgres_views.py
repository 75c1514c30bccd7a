"""What every Postgres projection of the dashboards database shares: the namespace's checkpoints table (one row per
projection version), served views switched in one transaction, and reads of what is served.

A projection version keeps tables of its own; readers query views named without
the version, which ``switch`` renames into place together, its checkpoint view last:
``is_served`` reads that view's definition.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from write import partitions


@functools.lru_cache(maxsize=1024)
def statement(sql: str) -> TextClause:
    """``text(sql)``, built once per distinct text. SQLAlchemy parses a text for its parameters and keys its
    compiled cache on the object, remembering the key on it: a text built anew for each batch cost a dashboards
    worker more CPU (about a fifth of its profile) than sending the statement. The texts are a version's own
    statements, a few per table."""
    return text(sql)


def checkpoints_table(schema: str) -> str:
    """The namespace's checkpoints table, shared by its Postgres projections."""
    return f"{schema}.projection_checkpoints"


def base_ddl(schema: str) -> list[str]:
    """The schema and its checkpoints table: what any version needs first, even to be dropped."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"""CREATE TABLE IF NOT EXISTS {checkpoints_table(schema)} (
            projection text PRIMARY KEY, position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now())""",
    ]


async def lock_schema(conn: AsyncConnection, schema: str) -> None:
    """Hold the namespace's DDL to this transaction until it ends. ``CREATE ... IF NOT EXISTS`` is not atomic (two
    at once fail on the catalog's unique index), and every process of ``prism serve`` sets up, at start, each
    projection it serves: with two projections in one schema, one retry was not always enough."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"prism.ddl.{schema}"})


#: DDL that takes a table lock even when ``IF NOT EXISTS`` finds nothing to do: ``ALTER TABLE`` its ACCESS EXCLUSIVE,
#: ``CREATE INDEX`` its SHARE lock, either of which waits behind (and blocks) every batch writing the table.
_ADD_COLUMN = re.compile(r"ALTER TABLE (\S+) ADD COLUMN IF NOT EXISTS (\w+)")
_CREATE_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+) ON (\S+)")


async def apply_ddl(conn: AsyncConnection, statements: Iterable[str]) -> None:
    """Run a version's idempotent DDL, leaving out the column additions and indexes already there.

    Every process of ``prism serve`` sets up, at start, each projection it serves, while the workers may be writing
    those tables: a no-op ``ALTER TABLE`` queued behind a batch, and the next batch behind it; two such, on two
    tables taken in another order than a batch takes them, deadlocked (and failed the process's start)."""
    for sql in statements:
        if await _already_there(conn, sql):
            continue
        await conn.execute(text(sql))


async def _already_there(conn: AsyncConnection, sql: str) -> bool:
    """Whether ``sql`` would change nothing: an index, or a column of a one-clause ``ALTER TABLE``, already there.
    Anything else (several clauses, quoted names) is not recognized, and runs."""
    if (column := _ADD_COLUMN.match(sql)) and _one_clause(sql):
        found = await conn.execute(
            text("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attname = :c AND NOT attisdropped"),
            {"t": column[1], "c": column[2].lower()},  # an unquoted name is folded to lower case
        )
        return found.scalar() is not None
    if index := _CREATE_INDEX.match(sql):
        schema = index[2].rpartition(".")[0]
        qualified = f"{schema}.{index[1]}" if schema else index[1]
        return (await conn.execute(text("SELECT to_regclass(:i)"), {"i": qualified})).scalar() is not None
    return False


def _one_clause(sql: str) -> bool:
    """No comma outside parentheses: ``ALTER TABLE t ADD COLUMN a numeric(20, 2)``, not ``… ADD a …, ADD b …``."""
    depth = 0
    for ch in sql:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            return False
    return True


async def set_up(engine: AsyncEngine, schema: str, create: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    """Run ``create`` (a version's DDL, idempotent) in one transaction holding the schema's DDL lock; once more if
    it failed all the same (a server that does not know the lock's key yet, a connection lost half-way)."""

    async def locked() -> None:
        async with engine.begin() as conn:
            await lock_schema(conn, schema)
            await create(conn)

    try:
        await locked()
    except DBAPIError:
        await locked()


def checkpoint_select(schema: str, key: str) -> str:
    """What a served checkpoint view selects: one version's rows of the checkpoints table, one per partition, named
    by what follows the version's key."""
    return (
        f"SELECT position, substr(projection, {len(key) + 1}) AS part FROM {checkpoints_table(schema)} "
        f"WHERE projection = '{key}' OR starts_with(projection, '{key}{partitions.SEPARATOR}')"
    )


async def upgrade_checkpoint_view(conn: AsyncConnection, view: str, key: str) -> None:
    """A served checkpoint view made by an earlier release, one row without partitions, given them if it serves
    this version (its column is added after ``position``, which a view may do in place)."""
    schema, name = view.split(".", 1)
    definition = await conn.scalar(
        text("SELECT definition FROM pg_views WHERE schemaname = :s AND viewname = :v"), {"s": schema, "v": name}
    )
    if definition and f"'{key}'" in definition and " part" not in definition:
        await conn.execute(text(f"CREATE OR REPLACE VIEW {view} AS {checkpoint_select(schema, key)}"))


async def create_unserved(conn: AsyncConnection, views: dict[str, str]) -> None:
    """Create the views that do not exist yet (the first version set up is served; a later one only by ``switch``)."""
    for view, select in views.items():
        if (await conn.execute(text("SELECT to_regclass(:v)"), {"v": view})).scalar() is None:
            await conn.execute(text(f"CREATE VIEW {view} AS {select}"))


async def switch(engine: AsyncEngine, views: dict[str, str]) -> None:
    """Staged views renamed into place in one transaction: readers see the old version or the new one."""
    async with engine.begin() as conn:
        for view, select in views.items():
            short = view.split(".", 1)[1]
            await conn.execute(text(f"DROP VIEW IF EXISTS {view}__staged"))
            await conn.execute(text(f"CREATE VIEW {view}__staged AS {select}"))
            await conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
            await conn.execute(text(f"ALTER VIEW {view}__staged RENAME TO {short}"))


async def serves(engine: AsyncEngine, checkpoint_view: str, key: str) -> bool:
    """Whether the served checkpoint view selects this version's checkpoint (it is switched last)."""
    schema, name = checkpoint_view.split(".", 1)
    async with engine.connect() as conn:
        definition = await conn.scalar(
            text("SELECT definition FROM pg_views WHERE schemaname = :s AND viewname = :v"), {"s": schema, "v": name}
        )
    return f"'{key}'" in (definition or "")


async def move_checkpoint(conn: AsyncConnection, schema: str, key: str, upto: int) -> None:
    """Move a version's checkpoint forward to ``upto`` (never back), in the caller's transaction."""
    await conn.execute(
        statement(
            f"INSERT INTO {checkpoints_table(schema)} AS c (projection, position) VALUES (:p, :upto) "
            "ON CONFLICT (projection) DO UPDATE SET position = GREATEST(c.position, excluded.position), "
            "updated_at = now()"
        ),
        {"p": key, "upto": upto},
    )


async def forget_checkpoint(conn: AsyncConnection, schema: str, key: str) -> None:
    """Delete a version's checkpoint and its partitions' (its ``drop``)."""
    await conn.execute(
        text(f"DELETE FROM {checkpoints_table(schema)} WHERE projection = :p OR starts_with(projection, :parts)"),
        {"p": key, "parts": key + partitions.SEPARATOR},
    )


async def version_checkpoint(engine: AsyncEngine, schema: str, key: str) -> int:
    """One version's checkpoint (0 before its first batch)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            statement(f"SELECT position FROM {checkpoints_table(schema)} WHERE projection = :p"), {"p": key}
        )
        return int(found.scalar() or 0)


async def served_checkpoint(engine: AsyncEngine, checkpoint_view: str, part: str = "") -> int:
    """The checkpoint of the version readers see (of its partition ``part`` names), through its served view."""
    found = await query_served(engine, f"SELECT position FROM {checkpoint_view} WHERE part = :part", {"part": part})
    return int(found[0][0] or 0) if found else 0


async def query_served(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    """Rows of a query on the served views (by column name or index), asked again once if a switch has just replaced
    them.

    asyncpg caches prepared statements per connection; a view renamed into place
    invalidates them, and the first use after a switch fails (the cache is then cleared).
    """
    try:
        return await _rows(engine, sql, params)
    except (DBAPIError, asyncpg.exceptions.InvalidCachedStatementError) as error:
        if type(getattr(error, "orig", error)).__name__ != "InvalidCachedStatementError":
            raise
    return await _rows(engine, sql, params)


class Row(asyncpg.Record):
    """A row whose columns read as attributes too, as SQLAlchemy's rows do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


async def _rows(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    """One statement on the driver's connection, outside a transaction: one round trip, one snapshot. Through
    SQLAlchemy it would be three (BEGIN, the statement, ROLLBACK)."""
    statement, names = _positional(sql)
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        try:
            return await driver.fetch(statement, *(params[name] for name in names), record_class=Row)
        except (OSError, asyncpg.exceptions.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError):
            await conn.invalidate()  # a connection the server dropped is not handed out again
            raise


@functools.lru_cache(maxsize=512)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """A query with ``:name`` parameters in asyncpg's ``$n`` form, and the parameters' names in that order."""
    compiled = text(sql).compile(dialect=PGDialect_asyncpg())
    return compiled.string, tuple(compiled.positiontup or ())
