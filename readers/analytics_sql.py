"""Analysts' own SQL on ClickHouse: read-only, bounded, fair, and scoped to the caller's tenant.

The guard does not parse SQL itself: ClickHouse's parser does. The text goes in as a value to
``formatQuerySingleLine`` (the embedded engine would otherwise run every statement of a
multi-statement text, even under ``EXPLAIN``), which refuses several statements and gives back one
canonical statement; that is what ``EXPLAIN AST`` checks and what runs.

The guard (``readers/sql_guard.py``) accepts only vetted node kinds of ``EXPLAIN AST``; the query
then runs with ``additional_table_filters`` that keep only the
tenant's rows of every view, ``readonly = 1`` last, limits on time, memory, rows and bytes, at the
lowest CPU priority, on a bounded thread pool of its own, at most a few per tenant at a time. With a
ClickHouse server it also runs as a user of its own per tenant, granted SELECT on the views only and
kept to the tenant's rows by row policies (the embedded engine has no writable access storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv as csv_module
import hashlib
import hmac
import io
import math
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from projections.layouts.clickhouse_cluster import ONE_NODE, Cluster, cluster_of
from projections.stores.clickhouse import CLICKHOUSE, connect
from projections.stores.clients import Stores
from readers.errors import ReaderError
from readers.sql_guard import (
    EXPLAIN_FORMAT,
    ONE_SELECT,
    TABLES,
    Scan,
    cte_names,
    escaped_names,
    refusal,
    safe_functions,
)


class SqlRefused(ReaderError):
    """Raised for a query the guard does not run: not one SELECT, or reaching outside the tenant's views."""

    http_status = 400
    code = "sql_refused"


class SqlFailed(ReaderError):
    """Raised when ClickHouse refuses the query: a syntax error, an unknown column, or a limit reached."""

    http_status = 422
    code = "sql_failed"


class TooManyQueries(ReaderError):
    """Raised when the tenant (or every analyst together) already has as many queries in flight as allowed."""

    http_status = 429
    code = "too_many_queries"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, "sql")
        self.headers = {"Retry-After": str(retry_after)}


#: What a server's client waits past an analyst's time limit: the engine's own cancellation and the answer's way back.
ANSWER_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    rows: int = 10_000
    memory_bytes: int = 512 * 1024 * 1024
    #: Most bytes of a result (as the engine counts them, uncompressed).
    bytes: int = 10_000_000
    #: Queries of one tenant in flight; the next waits ``queue_seconds`` for a turn, then is refused.
    concurrent: int = 2
    #: Queries of all tenants in flight: the size of the analysts' own thread pool.
    concurrent_total: int = 4
    queue_seconds: float = 1.0
    #: Threads one query may use: analysts share the cores with every reader.
    threads: int = 1

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The limits the ``PRISM_SQL_*`` settings ask for."""
        return cls(
            settings.sql_max_seconds,
            settings.sql_max_rows,
            settings.sql_max_memory_mb * 1024 * 1024,
            settings.sql_max_bytes,
            settings.sql_max_concurrent,
            settings.sql_max_concurrent_total,
            settings.sql_queue_seconds,
            settings.sql_max_threads,
        )


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]


# --- fairness ---------------------------------------------------------------------------------------------


class Admission:
    """At most ``per_tenant`` queries of one tenant and ``total`` of all tenants in flight; a query over either
    waits up to ``wait`` seconds for a turn (woken when one ends, never by polling), then is refused."""

    def __init__(self, per_tenant: int, total: int, wait: float, retry_after: int) -> None:
        self.per_tenant, self.total, self.wait, self.retry_after = per_tenant, total, wait, retry_after
        self._running: Counter[str] = Counter()
        self._waiters: deque[asyncio.Future] = deque()

    def in_flight(self, tenant: str | None = None) -> int:
        return self._running[tenant] if tenant is not None else self._running.total()

    async def enter(self, tenant: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while not self._free(tenant):
            if (remaining := deadline - loop.time()) <= 0:
                raise TooManyQueries(self._why(tenant), self.retry_after)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            with contextlib.suppress(TimeoutError):  # its turn came, or the wait is over: the loop decides
                await asyncio.wait_for(waiter, remaining)
        self._running[tenant] += 1

    def leave(self, tenant: str) -> None:
        """One query of ``tenant`` ended (in the event loop's thread): every waiter looks again."""
        self._running[tenant] -= 1
        if self._running[tenant] <= 0:
            del self._running[tenant]
        while self._waiters:
            if not (waiter := self._waiters.popleft()).done():
                waiter.set_result(None)

    def _free(self, tenant: str) -> bool:
        return self._running[tenant] < self.per_tenant and self._running.total() < self.total

    def _why(self, tenant: str) -> str:
        if self._running[tenant] >= self.per_tenant:
            return (
                f"this tenant already has {self._running[tenant]} analyst queries running (at most "
                f"{self.per_tenant}); retry when one has finished"
            )
        return "the analysts' queries are at capacity; retry shortly"


# --- running ----------------------------------------------------------------------------------------------

#: The marker of the byte cap's own error, told apart from any other ``throwIf``.
_TOO_BIG = "prism: the result is larger than"


class AnalystSql:
    """Runs analysts' queries, each on a client of its own whose default database is the namespace's.

    A fresh client per query (about 10 ms on the embedded engine) because the embedded
    engine may keep a query's settings for its session, even a failed one's or an
    EXPLAIN's: one query must not change what the next one, perhaps another tenant's, runs under.
    The queries run on a thread pool of their own, never on asyncio's default one that readiness,
    the relay and the other readers share: a slow analyst cannot starve them.
    """

    def __init__(self, stores: Stores, clickhouse_url: str, chdb_path: str, limits: Limits) -> None:
        self.database, self.limits = stores.namespace, limits
        self._access = ServerAccess(clickhouse_url, stores.namespace, cluster_of(stores)) if clickhouse_url else None
        # A server's client waits for the query's own time limit (the engine stops it there) and a margin, no more.
        self._deadline = limits.seconds + ANSWER_MARGIN_SECONDS
        self._connect = lambda: connect(clickhouse_url, chdb_path, database=stores.namespace, deadline=self._deadline)
        self._functions: frozenset[str] | None = None
        self._executor = ThreadPoolExecutor(limits.concurrent_total, thread_name_prefix="prism-analyst-sql")
        self.admission = Admission(
            limits.concurrent, limits.concurrent_total, limits.queue_seconds, max(1, math.ceil(limits.seconds))
        )

    async def run(self, tenant: str, sql: str, csv: bool = False) -> Result | bytes:
        await self.admission.enter(tenant)
        loop = asyncio.get_running_loop()
        try:
            work = self._executor.submit(self._run, tenant, sql, csv)
        except RuntimeError:  # shut down
            self.admission.leave(tenant)
            raise
        # The turn ends when the thread does, not when the caller stops waiting: a disconnected
        # client must not let more queries run than there are threads.
        work.add_done_callback(lambda _: _call_soon(loop, self.admission.leave, tenant))
        return await asyncio.wrap_future(work)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, tenant: str, sql: str, csv: bool) -> Result | bytes:
        client = self._connect()
        try:
            checked = self._checked(client, sql)
            if self._access is None:
                return self._checked_run(client, tenant, checked, csv)
        finally:
            client.close()
        analyst = self._access.client(tenant, self._deadline)
        try:
            return self._checked_run(analyst, tenant, checked, csv)
        finally:
            analyst.close()

    def _checked(self, client, sql: str) -> str:
        """The query as one canonical statement, or a SqlFailed / SqlRefused saying why not."""
        try:  # passed as a value, never run: one statement back, or a syntax error
            # (in hex: the driver reads the text of a query, and would take "... LIMIT 0" for a metadata probe)
            canonical = client.query(
                "SELECT formatQuerySingleLine(unhex(%(q)s))", parameters={"q": sql.encode().hex()}
            ).result_rows[0][0]
        except CLICKHOUSE.errors as error:  # the engine's refusal is the query's fault, said in its words
            raise SqlFailed(f"ClickHouse cannot parse the query: {_reason(error)}", "sql") from None
        if not re.match(r"(?i)(SELECT|WITH)\b|\(", canonical):  # no need to ask EXPLAIN about SYSTEM, SET, USE...
            raise SqlRefused(ONE_SELECT, "sql")
        if escaped_names(canonical):
            raise SqlRefused("quoted names with escapes (newlines, quotes...) are not allowed", "sql")
        try:
            ast = client.raw_query(f"EXPLAIN AST {canonical}", fmt=EXPLAIN_FORMAT).decode().splitlines()
        except CLICKHOUSE.errors as error:  # the engine's refusal is the query's fault, said in its words
            raise SqlFailed(f"ClickHouse cannot parse the query: {_reason(error)}", "sql") from None
        if self._functions is None:
            self._functions = safe_functions(client)
        scan = Scan()
        reason = refusal(ast, self._functions, canonical, cte_names(canonical), scan)
        reason = reason or self._shadowing(client, scan.cte_references)
        if reason:
            raise SqlRefused(reason, "sql")
        return canonical

    def _shadowing(self, client, names: set[str]) -> str | None:
        """A CTE may not share a name with a real table of the namespace (where unqualified names resolve):
        out of the CTE's scope the name would read that table."""
        if not names:
            return None
        found = client.query(
            "SELECT name FROM system.tables WHERE database = %(d)s AND name IN %(n)s LIMIT 1",
            parameters={"d": self.database, "n": tuple(names)},
        ).result_rows
        return f"table {found[0][0]} is not available; name the CTE otherwise" if found else None

    def _checked_run(self, client, tenant: str, sql: str, csv: bool) -> Result | bytes:
        try:
            result = client.query(self._bounded(sql), settings=self._settings(tenant))
        except CLICKHOUSE.errors as error:  # the engine's refusal is the query's fault, said in its words
            raise SqlFailed(self._failure(_reason(error)), "sql") from None
        if len(result.result_rows) > self.limits.rows:
            raise SqlFailed(f"the query returns more than {self.limits.rows} rows; aggregate or add a LIMIT", "sql")
        answer = Result(list(result.column_names), [[_plain(value) for value in row] for row in result.result_rows])
        return _csv(answer) if csv else answer

    def _bounded(self, sql: str) -> str:
        """The query, stopped by the engine at one row past the row limit or at the byte limit.

        One row past the limit tells "too many" without trusting the engine's own row check. The
        bytes are counted by the engine as the rows stream out (a running sum, so nothing is held
        for it), and the engine stops the query at the first block past the cap: a 100 MB result
        never reaches Python. (``max_result_bytes`` does the same on a server; the embedded engine
        ignores it.)
        """
        cap = self.limits.bytes
        return (
            f"SELECT * FROM ({sql}) QUALIFY throwIf(sum(byteSize(*)) OVER (ROWS BETWEEN UNBOUNDED PRECEDING "
            f"AND CURRENT ROW) > {cap}, '{_TOO_BIG} {cap} bytes') = 0 LIMIT {self.limits.rows + 1}"
        )

    def _failure(self, reason: str) -> str:
        if _TOO_BIG in reason:
            return (
                f"the query's result is larger than {self.limits.bytes:,} bytes (PRISM_SQL_MAX_BYTES); "
                "select fewer or smaller columns, aggregate or add a LIMIT"
            )
        return f"the query failed: {reason}"

    def _settings(self, tenant: str) -> dict[str, Any]:
        """Limits and the tenant filter first: ``readonly`` last, after which nothing may change a setting."""
        return {
            "max_execution_time": self.limits.seconds,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.limits.memory_bytes,
            "max_result_bytes": self.limits.bytes,
            "result_overflow_mode": "throw",
            "max_threads": self.limits.threads,
            "os_thread_priority": 19,  # the lowest: readers and health checks come first on shared cores
            "additional_table_filters": {f"{self.database}.{t}": f"tenant_id = {_quote(tenant)}" for t in TABLES},
            "readonly": 1,
        }


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


class ServerAccess:
    """With a ClickHouse server, each tenant's queries run as a user of its own: granted SELECT on the
    served views only (which read their tables as their definer), readonly, and held to the tenant's
    rows by a row policy on each view.

    This is the second wall behind the guard (the embedded engine has none: its only access storage is
    read-only, so ``CREATE USER`` fails there). A row policy on a table filters every user's reads of
    it, so the one policy per view is ``TO ALL`` and keeps rows only for the namespace's analyst users
    (whose names end in their tenant): Prism's own user still reads everything. The password is derived
    from the server's URL (which holds the administrator's credentials) so that every Prism process
    pointing at the server agrees on it. On a cluster, users, grants and row policies are made on every node
    (``ON CLUSTER``): a query may reach any of them.
    """

    def __init__(self, url: str, database: str, cluster: Cluster = ONE_NODE) -> None:
        self.url, self.database, self.cluster = url, database, cluster
        self.prefix = f"{database}_analyst_"
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def user(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}"

    def password(self, tenant: str) -> str:
        return hmac.new(self.url.encode(), f"analyst/{self.database}/{tenant}".encode(), hashlib.sha256).hexdigest()

    def client(self, tenant: str, deadline: float | None = None):
        """The tenant's own server user's client; ``deadline``: the query's time limit and a margin."""
        self._provision(tenant)
        return connect(
            self.url,
            "",
            database=self.database,
            deadline=deadline,
            username=self.user(tenant),
            password=self.password(tenant),
        )

    def statements(self, tenant: str) -> list[str]:
        """What makes the tenant's user and the views' row policies: idempotent, so every process may run it."""
        user, db, password = f"`{self.user(tenant)}`", self.database, _quote(self.password(tenant))
        on = self.cluster.on
        policy = f"CREATE ROW POLICY OR REPLACE prism_analyst_rows{on}"
        rows = (
            f"NOT startsWith(currentUser(), {_quote(self.prefix)}) "
            f"OR tenant_id = substring(currentUser(), {len(self.prefix) + 1})"
        )
        return [
            # readonly 2: Prism may still set the limits per query; its own readonly=1 comes last
            f"CREATE USER IF NOT EXISTS {user}{on} IDENTIFIED WITH sha256_password BY {password} "
            f"DEFAULT DATABASE {db} SETTINGS readonly = 2",
            f"ALTER USER {user}{on} IDENTIFIED WITH sha256_password BY {password}",
            f"REVOKE{on} ALL ON *.* FROM {user}",
            *(f"GRANT{on} SELECT ON {db}.{view} TO {user}" for view in TABLES),
            *(f"{policy} ON {db}.{view} USING {rows} TO ALL" for view in TABLES),
        ]

    def _provision(self, tenant: str) -> None:
        with self._lock:
            if tenant in self._ready:
                return
            admin = connect(self.url, "", database=self.database)
            try:
                for statement in self.statements(tenant):
                    admin.command(statement)
            finally:
                admin.close()
            self._ready.add(tenant)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _csv(result: Result) -> bytes:
    out = io.StringIO()
    writer = csv_module.writer(out, quoting=csv_module.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return out.getvalue().encode()


def _plain(value: Any) -> Any:
    """A JSON-ready form of any value the engine returns, so that no answer can fail to serialise.

    Exact decimals as strings (JSON numbers would round money); ids, addresses and times as text;
    maps as objects with text keys; tuples and arrays as lists; bytes as text; NaN and infinities as
    text (JSON has no such numbers); anything else the driver may add later as its text.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)  # Decimal, UUID, IPv4Address, IPv6Address, timedelta, and whatever else


def _key(key: Any) -> str:
    plain = _plain(key)
    return plain if isinstance(plain, str) else str(plain)


def _reason(error: Exception) -> str:
    """ClickHouse's own message, without the stack and repeated prefixes."""
    text = str(error)
    found = re.search(r"DB::Exception: (?:Code: \d+\. DB::Exception: )?(.*?)(?: \(version|\n|$)", text)
    return (found.group(1) if found else text)[:500]
