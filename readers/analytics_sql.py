"""Analysts' own SQL on ClickHouse: read-only, bounded, and scoped to the caller's tenant.

The guard does not parse SQL itself: ClickHouse's parser does. The text goes in as a
value to ``formatQuerySingleLine`` (the embedded engine would otherwise run every
statement of a multi-statement text, even under ``EXPLAIN``), which refuses several
statements and gives back one canonical statement; that is what ``EXPLAIN AST`` checks
and what runs. It is accepted only if it is one SELECT whose tables are the served views
(``orders``, ``order_lines``, ``order_events``, ``products``, ``daily_orders``), unqualified, with no
table functions (``file``, ``url``, ``remote``, ``numbers``...), no system tables, no ``IN <table>``,
no ``INTO OUTFILE``, and only functions that compute on their arguments (chosen by the
engine's own categories: ``file()``, ``getSetting()``, ``dictGet()``, ``hasColumnInTable()``
and their kind reach past the tenant's rows). It then runs with ``additional_table_filters`` that keep only the
tenant's rows of every view, and ``readonly = 1`` last, so neither a write nor a
``SETTINGS`` clause that would lift the filters or the limits is accepted.
"""

from __future__ import annotations

import asyncio
import csv as csv_module
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.base import Stores
from projections.clickhouse import connect
from readers.errors import ReaderError

TABLES = ("orders", "order_lines", "order_events", "products", "daily_orders")


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


#: Function categories (``system.functions.categories``) that compute on their arguments only. "Other",
#: "Dictionary", "Introspection" and "Internal" hold the ones that reach files, settings, other tables or the server.
SAFE_CATEGORIES = frozenset({
    "Aggregate Functions", "Type Conversion", "Dates and Times", "Arrays", "String", "Hash", "String Search", "JSON",
    "Mathematical", "URL", "Arithmetic", "Map", "IP Address", "Comparison", "Tuple", "Distance", "Random Number",
    "Bitmap", "Bit", "Encoding", "UUID", "String Splitting", "String Replacement", "Null", "Rounding", "Conditional",
    "Logical", "Financial", "Geo", "Geo Polygon", "Time Series", "Time Window"})
#: From "Other": the ones that only compute.
SAFE_OTHERS = frozenset({
    "bar", "byteSize", "countDigits", "finalizeAggregation", "formatReadableDecimalSize", "formatReadableQuantity",
    "formatReadableSize", "formatReadableTimeDelta", "identity", "ignore", "initializeAggregation", "isConstant",
    "isDecimalOverflow", "materialize", "neighbor", "parseReadableSize", "parseReadableSizeOrNull",
    "parseReadableSizeOrZero", "parseTimeDelta", "runningAccumulate", "runningDifference",
    "runningDifferenceStartingWithFirstValue", "throwIf", "toColumnTypeName", "toTypeName", "transform",
    "visibleWidth", "lambda"})
_COMBINATORS = ("If", "Array", "Map", "Distinct", "OrDefault", "OrNull", "State", "Merge", "ForEach", "Resample",
                "SimpleState", "ArgMin", "ArgMax")
_IN = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"})


@dataclass
class Node:
    text: str
    children: list["Node"]


def tree(ast: list[str]) -> Node:
    """``EXPLAIN AST`` lines (one space of indent per level) as a tree."""
    root, stack = Node("", []), []
    for line in ast:
        depth = len(line) - len(line.lstrip(" "))
        node = Node(line.strip(), [])
        del stack[depth:]
        (stack[-1] if stack else root).children.append(node)
        stack.append(node)
    return root


def refusal(ast: list[str], allowed_functions: frozenset[str]) -> str | None:
    """Why the query whose ``EXPLAIN AST`` lines these are may not run, or None."""
    if not ast or ast[0].strip() != "SelectWithUnionQuery (children 2)" or ast[-1].strip() != "Identifier Native":
        return "only a single SELECT query is allowed (no INSERT, DDL, SYSTEM, INTO OUTFILE or several statements)"
    return _refusal(tree(ast), None, allowed_functions)


def _refusal(node: Node, parent: Node | None, allowed: frozenset[str]) -> str | None:
    kind, _, rest = node.text.partition(" ")
    name = rest.split(" ", 1)[0]
    if kind == "Set":
        return "a SETTINGS clause is not allowed; the limits and the tenant filter are set by Prism"
    if kind == "TableIdentifier" and name not in TABLES:
        return f"table {name} is not available; query the views {', '.join(TABLES)} (unqualified)"
    if kind == "Function":
        if parent is not None and parent.text.startswith("TableExpression"):
            return f"table function {name}() is not allowed; query the views {', '.join(TABLES)}"
        if not _allowed(name, allowed):
            return f"function {name}() is not available to analysts' queries"
        arguments = node.children[0].children if node.children else []
        if name in _IN and len(arguments) == 2 and arguments[1].text.startswith("Identifier"):
            return "IN takes a list or a subquery here, not a table name"
    for child in node.children:
        if (found := _refusal(child, node, allowed)) is not None:
            return found
    return None


def _allowed(name: str, allowed: frozenset[str]) -> bool:
    """A safe function, or a safe aggregate with combinators (``sumIf``, ``uniqExactState``...)."""
    while name not in allowed:
        stripped = next((name[:-len(c)] for c in _COMBINATORS if name.endswith(c) and len(name) > len(c)), None)
        if stripped is None:
            return False
        name = stripped
    return True


def safe_functions(client) -> frozenset[str]:
    """The functions analysts may call: by category, aliases included, from the engine's own list."""
    rows = client.query("SELECT name, categories, alias_to FROM system.functions").result_rows
    categories = {name: category for name, category, _ in rows}
    return frozenset(name for name, category, alias_to in rows
                     if (categories.get(alias_to, category) if alias_to else category) in SAFE_CATEGORIES
                     or name in SAFE_OTHERS or alias_to in SAFE_OTHERS) | SAFE_OTHERS


class AnalystSql:
    """Runs analysts' queries, each on a client of its own whose default database is the namespace's.

    A fresh client per query (about 10 ms on the embedded engine) because the embedded
    engine may keep a query's settings for its session, even a failed one's or an
    EXPLAIN's: one query must not change what the next one, perhaps another tenant's, runs under.
    """

    def __init__(self, stores: Stores, clickhouse_url: str, chdb_path: str, limits: Limits) -> None:
        self.database, self.limits = stores.namespace, limits
        self._connect = lambda: connect(clickhouse_url, chdb_path, database=stores.namespace)
        self._functions: frozenset[str] | None = None

    async def run(self, tenant: str, sql: str, csv: bool = False) -> Result | bytes:
        return await asyncio.to_thread(self._run, tenant, sql, csv)

    def _run(self, tenant: str, sql: str, csv: bool) -> Result | bytes:
        client = self._connect()
        try:
            return self._checked_run(client, tenant, self._checked(client, sql), csv)
        finally:
            client.close()

    def _checked(self, client, sql: str) -> str:
        """The query as one canonical statement, or a SqlFailed / SqlRefused saying why not."""
        try:  # passed as a value, never run: one statement back, or a syntax error
            canonical = client.query("SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql}).result_rows[0][0]
            ast = client.query(f"EXPLAIN AST {canonical}")
        except Exception as error:
            raise SqlFailed(f"ClickHouse cannot parse the query: {_reason(error)}", "sql") from None
        if self._functions is None:
            self._functions = safe_functions(client)
        reason = refusal([row[0] for row in ast.result_rows], self._functions)
        if reason:
            raise SqlRefused(reason, "sql")
        return canonical

    def _checked_run(self, client, tenant: str, sql: str, csv: bool) -> Result | bytes:
        # One row past the limit tells "too many" without trusting the engine's own row check.
        bounded = f"SELECT * FROM ({sql}) LIMIT {self.limits.rows + 1}"
        try:
            result = client.query(bounded, settings=self._settings(tenant))
        except Exception as error:
            raise SqlFailed(f"the query failed: {_reason(error)}", "sql") from None
        if len(result.result_rows) > self.limits.rows:
            raise SqlFailed(f"the query returns more than {self.limits.rows} rows; aggregate or add a LIMIT", "sql")
        answer = Result(list(result.column_names), [[_plain(value) for value in row] for row in result.result_rows])
        return _csv(answer) if csv else answer

    def _settings(self, tenant: str) -> dict[str, Any]:
        """Limits and the tenant filter first: ``readonly`` last, after which nothing may change a setting."""
        return {
            "max_execution_time": self.limits.seconds, "timeout_overflow_mode": "throw",
            "max_memory_usage": self.limits.memory_bytes,
            "additional_table_filters": {f"{self.database}.{t}": f"tenant_id = '{tenant}'" for t in TABLES},
            "readonly": 1,
        }


def _csv(result: Result) -> bytes:
    out = io.StringIO()
    writer = csv_module.writer(out, quoting=csv_module.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return out.getvalue().encode()


def _plain(value: Any) -> Any:
    """Exact decimals as strings (JSON numbers would round money), ids and times as text, the rest as it is."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value) if isinstance(value, (Decimal, UUID)) else value


def _reason(error: Exception) -> str:
    """ClickHouse's own message, without the stack and repeated prefixes."""
    text = str(error)
    found = re.search(r"DB::Exception: (?:Code: \d+\. DB::Exception: )?(.*?)(?: \(version|\n|$)", text)
    return (found.group(1) if found else text)[:500]
