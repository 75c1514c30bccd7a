"""Analysts' own SQL on ClickHouse: read-only, bounded, and scoped to the caller's tenant.

The guard does not parse SQL itself: ClickHouse's parser does. The text goes in as a
value to ``formatQuerySingleLine`` (the embedded engine would otherwise run every
statement of a multi-statement text, even under ``EXPLAIN``), which refuses several
statements and gives back one canonical statement; that is what ``EXPLAIN AST`` checks
and what runs. It is accepted only if it is one SELECT whose tables are the served views
(``orders``, ``order_lines``, ``order_events``, ``products``, ``daily_orders``), unqualified, with no
table functions (``file``, ``url``, ``remote``, ``numbers``...), no system tables and no
``INTO OUTFILE``. It then runs with ``additional_table_filters`` that keep only the
tenant's rows of every view, and ``readonly = 1`` last, so neither a write nor a
``SETTINGS`` clause that would lift the filters or the limits is accepted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from projections.base import Stores
from projections.clickhouse import connect
from readers.errors import ReaderError

TABLES = ("orders", "order_lines", "order_events", "products", "daily_orders")
_TABLE = re.compile(r"^\s*TableIdentifier (\S+)")
_TABLE_EXPRESSION = re.compile(r"^(\s*)TableExpression")
_FUNCTION = re.compile(r"^(\s*)Function (\w+)")


class SqlRefused(ReaderError):
    """Raised for a query the guard does not run: not one SELECT, or reaching outside the tenant's views."""

    http_status = 400
    code = "sql_refused"


class SqlFailed(ReaderError):
    """Raised when ClickHouse refuses the query: a syntax error, an unknown column, or a limit reached."""

    http_status = 422
    code = "sql_failed"


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    rows: int = 10_000
    memory_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]


def refusal(ast: list[str]) -> str | None:
    """Why the query whose ``EXPLAIN AST`` lines these are may not run, or None."""
    if not ast or ast[0].strip() != "SelectWithUnionQuery (children 2)" or ast[-1].strip() != "Identifier Native":
        return "only a single SELECT query is allowed (no INSERT, DDL, SYSTEM, INTO OUTFILE or several statements)"
    if any(line.strip() == "Set" for line in ast):
        return "a SETTINGS clause is not allowed; the limits and the tenant filter are set by Prism"
    table_expression_depth = None
    for line in ast:
        if (found := _TABLE_EXPRESSION.match(line)) is not None:
            table_expression_depth = len(found.group(1))
            continue
        if (function := _FUNCTION.match(line)) is not None and table_expression_depth is not None \
                and len(function.group(1)) == table_expression_depth + 1:
            return f"table function {function.group(2)}() is not allowed; query the views {', '.join(TABLES)}"
        table_expression_depth = None
        if (table := _TABLE.match(line)) is not None and table.group(1) not in TABLES:
            return f"table {table.group(1)} is not available; query the views {', '.join(TABLES)} (unqualified)"
    return None


class AnalystSql:
    """Runs analysts' queries, each on a client of its own whose default database is the namespace's.

    A fresh client per query (about 10 ms on the embedded engine) because the embedded
    engine may keep a query's settings for its session, even a failed one's or an
    EXPLAIN's: one query must not change what the next one, perhaps another tenant's, runs under.
    """

    def __init__(self, stores: Stores, clickhouse_url: str, chdb_path: str, limits: Limits) -> None:
        self.database, self.limits = stores.namespace, limits
        self._connect = lambda: connect(clickhouse_url, chdb_path, database=stores.namespace)

    async def run(self, tenant: str, sql: str, csv: bool = False) -> Result | bytes:
        return await asyncio.to_thread(self._run, tenant, sql, csv)

    def _run(self, tenant: str, sql: str, csv: bool) -> Result | bytes:
        client = self._connect()
        try:
            return self._checked_run(client, tenant, self._checked(client, sql), csv)
        finally:
            client.close()

    @staticmethod
    def _checked(client, sql: str) -> str:
        """The query as one canonical statement, or a SqlFailed / SqlRefused saying why not."""
        try:  # passed as a value, never run: one statement back, or a syntax error
            canonical = client.query("SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql}).result_rows[0][0]
            ast = client.query(f"EXPLAIN AST {canonical}")
        except Exception as error:
            raise SqlFailed(f"ClickHouse cannot parse the query: {_reason(error)}", "sql") from None
        reason = refusal([row[0] for row in ast.result_rows])
        if reason:
            raise SqlRefused(reason, "sql")
        return canonical

    def _checked_run(self, client, tenant: str, sql: str, csv: bool) -> Result | bytes:
        # One row past the limit tells "too many" without trusting the engine's own row check.
        bounded = f"SELECT * FROM ({sql}) LIMIT {self.limits.rows + 1}"
        try:
            if csv:
                body = client.raw_query(f"{bounded} FORMAT CSVWithNames", settings=self._settings(tenant))
                if body.count(b"\n") > self.limits.rows + 1:
                    raise SqlFailed(f"the query returns more than {self.limits.rows} rows; aggregate or add a LIMIT",
                                    "sql")
                return body
            result = client.query(bounded, settings=self._settings(tenant))
        except SqlFailed:
            raise
        except Exception as error:
            raise SqlFailed(f"the query failed: {_reason(error)}", "sql") from None
        if len(result.result_rows) > self.limits.rows:
            raise SqlFailed(f"the query returns more than {self.limits.rows} rows; aggregate or add a LIMIT", "sql")
        return Result(list(result.column_names), [[_plain(value) for value in row] for row in result.result_rows])

    def _settings(self, tenant: str) -> dict[str, Any]:
        """Limits and the tenant filter first: ``readonly`` last, after which nothing may change a setting."""
        return {
            "max_execution_time": self.limits.seconds, "timeout_overflow_mode": "throw",
            "max_memory_usage": self.limits.memory_bytes,
            "additional_table_filters": {f"{self.database}.{t}": f"tenant_id = '{tenant}'" for t in TABLES},
            "readonly": 1,
        }


def _plain(value: Any) -> Any:
    """Exact decimals as strings (JSON numbers would round money); the rest as the JSON encoder does."""
    return str(value) if isinstance(value, Decimal) else value


def _reason(error: Exception) -> str:
    """ClickHouse's own message, without the stack and repeated prefixes."""
    text = str(error)
    found = re.search(r"DB::Exception: (?:Code: \d+\. DB::Exception: )?(.*?)(?: \(version|\n|$)", text)
    return (found.group(1) if found else text)[:500]
