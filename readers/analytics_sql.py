"""Analysts' own SQL on ClickHouse: read-only, bounded, fair, and scoped to the caller's tenant.

The guard does not parse SQL itself: ClickHouse's parser does. The text goes in as a value to
``formatQuerySingleLine`` (the embedded engine would otherwise run every statement of a
multi-statement text, even under ``EXPLAIN``), which refuses several statements and gives back one
canonical statement; that is what ``EXPLAIN AST`` checks and what runs.

``EXPLAIN AST`` is a printer, not a guarantee: some node kinds keep parts of themselves outside
their printed children (``* APPLY(x -> (SELECT ...))`` prints a bare ``ColumnsApplyTransformer``,
``(SELECT ...).*`` a bare ``Asterisk``), and the engine runs what it does not print. So the guard is an
ALLOWLIST: every printed node must be of a kind below, whose every part is a printed child (read in
ClickHouse's ``src/Parsers/AST*.h`` and confirmed on the engine by putting a subquery in each slot),
its declared ``(children N)`` must match the children listed, and anything else is refused. The
allowed kinds, and why each is safe:

- ``SelectWithUnionQuery``: a SELECT or a UNION of SELECTs; nested ones may hold only their list of
  SELECTs (no ``INTO OUTFILE``, ``FORMAT`` or ``SETTINGS``, which would be extra children).
- ``SelectIntersectExceptQuery``: INTERSECT / EXCEPT of SELECTs; its operands are its children.
- ``SelectQuery``: one SELECT; each clause (WITH, list, FROM, PREWHERE, WHERE, GROUP BY, HAVING,
  WINDOW, QUALIFY, ORDER BY, LIMIT...) is a printed child; its SETTINGS would be a ``Set`` (refused).
- ``ExpressionList``: a list of other nodes, nothing of its own.
- ``WithElement``: a CTE ``name AS (SELECT ...)``; its one child is the checked ``Subquery``.
- ``Subquery``: a parenthesised SELECT, checked like the outer one.
- ``TablesInSelectQuery`` / ``TablesInSelectQueryElement``: the FROM clause and its items.
- ``TableExpression``: one FROM item: a view, a CTE or a subquery (a table function is refused).
- ``TableIdentifier``: a table name: only the views (unqualified) or a CTE of the query.
- ``TableJoin``: the join kind, its ON / USING expressions are children.
- ``ArrayJoin``: ARRAY JOIN of expressions, which are children.
- ``Identifier``: a column or alias name (never a table: ``IN t`` is refused at the ``Function``).
- ``Literal``: a constant value; it has no children.
- ``Function``: a call or operator whose arguments and parameters are children; only functions that
  compute on their arguments (by the engine's own categories), never as a table function, never with
  a table name as the set of ``IN``, never an internal ``*IgnoreSet``.
- ``Asterisk``: a bare ``*`` only: with transformers it has children (refused); with an expression,
  ``(expr).*``, the expression is not printed, so the canonical text's ``.*`` are counted (below).
- ``QualifiedAsterisk``: ``t.*``, whose one child is the qualifying ``Identifier``.
- ``OrderByElement``: an ORDER BY item; WITH FILL bounds and COLLATE are children.
- ``InterpolateElement``: an INTERPOLATE item; its expression is a child.
- ``WindowDefinition`` / ``WindowListElement``: OVER (...) and WINDOW w AS (...); all children.
- ``SampleRatio``: a SAMPLE fraction, a number.

Refused are all other kinds, among them the column transformers (``APPLY``, ``EXCEPT``, ``REPLACE``) and
``COLUMNS(...)`` matchers whose lambdas are not printed, ``Set`` (SETTINGS anywhere), query parameters,
and every statement but SELECT. It then runs with ``additional_table_filters`` that keep only the
tenant's rows of every view, ``readonly = 1`` last, limits on time, memory, rows and bytes, at the
lowest CPU priority, on a bounded thread pool of its own, at most a few per tenant at a time. With a
ClickHouse server it also runs as a user of its own per tenant, granted SELECT on the views only and
kept to the tenant's rows by row policies (the embedded engine has no writable access storage).
"""

from __future__ import annotations

import asyncio
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
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from projections.base import Stores
from projections.clickhouse import connect
from readers.errors import ReaderError

TABLES = ("orders", "order_lines", "order_events", "products", "daily_orders")
_VIEWS = ", ".join(TABLES)


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


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]


# --- the guard --------------------------------------------------------------------------------------------

#: Function categories (``system.functions.categories``) that compute on their arguments only. "Other",
#: "Dictionary", "Introspection" and "Internal" hold the ones that reach files, settings, other tables or the server.
SAFE_CATEGORIES = frozenset({
    "Aggregate Functions", "Type Conversion", "Dates and Times", "Arrays", "String", "Hash", "String Search", "JSON",
    "Mathematical", "URL", "Arithmetic", "Map", "IP Address", "Comparison", "Tuple", "Distance", "Random Number",
    "Bitmap", "Bit", "Encoding", "UUID", "String Splitting", "String Replacement", "Null", "Rounding", "Conditional",
    "Logical", "Financial", "Geo", "Geo Polygon", "Time Series", "Time Window"})
#: From "Other": the ones that only compute; ``lambda``, ``exists`` and ``untuple`` are syntax whose parts are printed
#: children.
SAFE_OTHERS = frozenset({
    "bar", "byteSize", "countDigits", "finalizeAggregation", "formatReadableDecimalSize", "formatReadableQuantity",
    "formatReadableSize", "formatReadableTimeDelta", "identity", "ignore", "initializeAggregation", "isConstant",
    "isDecimalOverflow", "materialize", "neighbor", "parseReadableSize", "parseReadableSizeOrNull",
    "parseReadableSizeOrZero", "parseTimeDelta", "runningAccumulate", "runningDifference",
    "runningDifferenceStartingWithFirstValue", "throwIf", "toColumnTypeName", "toTypeName", "transform",
    "visibleWidth", "lambda", "exists", "untuple"})
_COMBINATORS = ("If", "Array", "Map", "Distinct", "OrDefault", "OrNull", "State", "Merge", "ForEach", "Resample",
                "SimpleState", "ArgMin", "ArgMax")
#: The IN family: their right side is a list or a subquery, never a table's name.
_IN = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"})
#: Names Prism gives its storage (``orders_v3``, ``orders_v3__staged``, checkpoints): never a CTE's name, so that a
#: CTE can never stand for a real table where the CTE is out of scope, even one created after the check.
_STORAGE_LIKE = re.compile(r"(?i)_v\d+($|_)|checkpoint|staged|^\.|inner")
_TRANSFORMERS = "column transformers (APPLY, EXCEPT, REPLACE) and COLUMNS() matchers are not allowed: ClickHouse " \
                "does not show what they run; name the columns instead"
_ONE_SELECT = "only a single SELECT query is allowed (no INSERT, DDL, SYSTEM, INTO OUTFILE or several statements)"
#: Kinds refused with a message of their own (any other unknown kind is refused by name).
_REFUSED = {
    "Set": "a SETTINGS clause is not allowed; the limits and the tenant filter are set by Prism",
    "QueryParameter": "query parameters ({name:Type}) are not allowed; write the values in the query",
    **dict.fromkeys(("ColumnsTransformerList", "ColumnsApplyTransformer", "ColumnsExceptTransformer",
                     "ColumnsReplaceTransformer", "ColumnsReplaceTransformer::Replacement", "ColumnsRegexpMatcher",
                     "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher"),
                    _TRANSFORMERS),
}
#: The format ``EXPLAIN AST`` is read in (one line a row, unescaped); the driver appends it to the explained query.
EXPLAIN_FORMAT = "TabSeparatedRaw"
_CHILDREN = re.compile(r" \(children (\d+)\)$")
_NAMED = re.compile(r"(\S+)(?: \(alias .*\))?")


@dataclass
class Node:
    kind: str
    name: str
    declared: int
    #: Whether the printed name is one plain word (maybe with an alias): ``orders x`` would be a table named so.
    plain: bool = True
    children: list["Node"] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [child.kind for child in self.children]


def tree(ast: list[str]) -> Node | None:
    """``EXPLAIN AST`` lines (one space of indent per level) as a tree; None if the lines are not a well-formed tree."""
    root, stack = Node("", "", -1), []
    for line in ast:
        depth = len(line) - len(line.lstrip(" "))
        if depth > len(stack) or "\n" in line:
            return None
        text = line.strip()
        counted = _CHILDREN.search(text)
        kind, _, rest = _CHILDREN.sub("", text).partition(" ")
        named = _NAMED.fullmatch(rest)
        node = Node(kind, named.group(1) if named else rest, int(counted.group(1)) if counted else 0, bool(named))
        del stack[depth:]
        (stack[-1] if stack else root).children.append(node)
        stack.append(node)
    return root


@dataclass
class Scan:
    """What the walk found besides a refusal: the ``t.*`` it saw and the CTE names it was asked to trust."""

    qualified_asterisks: int = 0
    cte_references: set[str] = field(default_factory=set)


def refusal(ast: list[str], allowed_functions: frozenset[str], canonical: str = "",
            ctes: frozenset[str] = frozenset(), scan: Scan | None = None) -> str | None:
    """Why the query whose ``EXPLAIN AST`` lines these are (of ``canonical``) may not run, or None."""
    root = tree(ast)
    if root is None or len(root.children) != 1:
        return _ONE_SELECT
    top = root.children[0]
    if top.kind != "SelectWithUnionQuery" or top.kinds != ["ExpressionList", "Identifier"] \
            or top.declared != 2 or top.children[1].name != EXPLAIN_FORMAT:  # the driver's FORMAT; any other: the caller's
        return _ONE_SELECT
    scan = scan if scan is not None else Scan()
    found = _walk(top.children[0], top, _Context(allowed_functions, ctes, scan))
    if found is None and canonical and _expression_asterisks(canonical) > scan.qualified_asterisks:
        return "(expression).* is not allowed: ClickHouse does not show what it runs; name the columns instead"
    return found


@dataclass(frozen=True)
class _Context:
    allowed: frozenset[str]
    ctes: frozenset[str]
    scan: Scan


def _walk(node: Node, parent: Node, context: _Context) -> str | None:
    if node.declared != len(node.children):  # printed with fewer (or more) children than it has: it hides something
        return f"{node.kind} is not allowed here: ClickHouse prints it without all of its parts"
    if node.kind in _REFUSED:
        return _REFUSED[node.kind]
    check = _CHECKS.get(node.kind)
    if check is None:
        return f"{node.kind} is not allowed in analysts' queries (only SELECT over the views {_VIEWS})"
    if (found := check(node, parent, context)) is not None:
        return found
    return next((found for child in node.children if (found := _walk(child, node, context)) is not None), None)


def _nothing(node: Node, parent: Node, context: _Context) -> str | None:
    return None


def _nested_select(node: Node, parent: Node, context: _Context) -> str | None:
    return None if node.kinds == ["ExpressionList"] else _ONE_SELECT


def _with_element(node: Node, parent: Node, context: _Context) -> str | None:
    return None if node.kinds == ["Subquery"] else "WITH name AS (SELECT ...) is the only kind of CTE allowed"


def _subquery(node: Node, parent: Node, context: _Context) -> str | None:
    return None if node.kinds == ["SelectWithUnionQuery"] else "a subquery may hold only a SELECT"


def _table_expression(node: Node, parent: Node, context: _Context) -> str | None:
    for child in node.children:
        if child.kind == "Function":
            return f"table function {child.name}() is not allowed; query the views {_VIEWS}"
        if child.kind not in ("TableIdentifier", "Subquery", "SampleRatio", "ExpressionList"):
            return f"{child.kind} is not allowed in FROM; query the views {_VIEWS}"
    return None


def _table(node: Node, parent: Node, context: _Context) -> str | None:
    if not node.plain or parent.kind != "TableExpression":
        return f"table {node.name} is not available; query the views {_VIEWS} (unqualified)"
    if node.name in TABLES:
        return None
    if node.name in context.ctes and not _STORAGE_LIKE.search(node.name):
        context.scan.cte_references.add(node.name)  # the caller checks that no such table exists
        return None
    return f"table {node.name} is not available; query the views {_VIEWS} (unqualified)"


def _function(node: Node, parent: Node, context: _Context) -> str | None:
    name = node.name
    if not node.plain:
        return f"function {name} is not available to analysts' queries"
    if parent.kind == "TableExpression":
        return f"table function {name}() is not allowed; query the views {_VIEWS}"
    if name.endswith("IgnoreSet") or not _allowed(name, context.allowed):
        return f"function {name}() is not available to analysts' queries"
    arguments = node.children[0].children if node.children and node.children[0].kind == "ExpressionList" else []
    if name in _IN and len(arguments) == 2 and arguments[1].kind == "Identifier":
        return "IN takes a list or a subquery here, not a table name"
    return None


def _asterisk(node: Node, parent: Node, context: _Context) -> str | None:
    return _TRANSFORMERS if node.children else None


def _qualified_asterisk(node: Node, parent: Node, context: _Context) -> str | None:
    if node.kinds != ["Identifier"]:
        return _TRANSFORMERS
    context.scan.qualified_asterisks += 1
    return None


#: The vetted node kinds (see the module's docstring for why each is safe) and the check each one needs.
_CHECKS: dict[str, Callable[[Node, Node, _Context], str | None]] = {
    "SelectWithUnionQuery": _nested_select, "SelectIntersectExceptQuery": _nothing, "SelectQuery": _nothing,
    "ExpressionList": _nothing, "WithElement": _with_element, "Subquery": _subquery,
    "TablesInSelectQuery": _nothing, "TablesInSelectQueryElement": _nothing, "TableExpression": _table_expression,
    "TableIdentifier": _table, "TableJoin": _nothing, "ArrayJoin": _nothing, "Identifier": _nothing,
    "Literal": _nothing, "Function": _function, "Asterisk": _asterisk, "QualifiedAsterisk": _qualified_asterisk,
    "OrderByElement": _nothing, "InterpolateElement": _nothing, "WindowDefinition": _nothing,
    "WindowListElement": _nothing, "SampleRatio": _nothing,
}
ALLOWED_KINDS = frozenset(_CHECKS)


#: How ``safe_functions`` marks a case-insensitive one (``COUNT``, ``Sum``), by its lower-case name.
_ANY_CASE = "any case:"


def _allowed(name: str, allowed: frozenset[str]) -> bool:
    """A safe function, or a safe aggregate with combinators (``sumIf``, ``uniqExactState``...)."""
    while name not in allowed and _ANY_CASE + name.lower() not in allowed:
        stripped = next((name[:-len(c)] for c in _COMBINATORS if name.endswith(c) and len(name) > len(c)), None)
        if stripped is None:
            return False
        name = stripped
    return True


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"")


def _blanked(canonical: str) -> str:
    """The canonical text with string literals and quoted names emptied: what is left is syntax."""
    return _QUOTED.sub(lambda m: m.group(0)[0] * 2, canonical)


def _expression_asterisks(canonical: str) -> int:
    """How many ``.*`` the text has: each must be a printed ``t.*``, or it is an unprinted ``(expression).*``."""
    return _blanked(canonical).count(".*")


def escaped_names(canonical: str) -> bool:
    """Whether a quoted name holds escapes (a newline, say): ``EXPLAIN AST`` prints names raw, one line per node."""
    return any(m.group(0)[0] != "'" and "\\" in m.group(0) for m in _QUOTED.finditer(canonical))


_CTE = re.compile(r"(?:`((?:[^`\\]|\\.)*)`|\b([A-Za-z_][A-Za-z0-9_]*))\s+AS\s+\(")


def cte_names(canonical: str) -> frozenset[str]:
    """Every ``name AS (`` of the text: the CTEs (and window names, which are harmless as table names: they name no table)."""
    text = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[0] == "`" else "''", canonical)
    return frozenset(quoted or plain for quoted, plain in _CTE.findall(text))


def safe_functions(client) -> frozenset[str]:
    """The functions analysts may call: by category, aliases included, from the engine's own list."""
    rows = client.query("SELECT name, categories, alias_to, case_insensitive FROM system.functions").result_rows
    categories = {name: category for name, category, _, _ in rows}
    safe = {(name, any_case) for name, category, alias_to, any_case in rows
            if (categories.get(alias_to, category) if alias_to else category) in SAFE_CATEGORIES
            or name in SAFE_OTHERS or alias_to in SAFE_OTHERS}
    return frozenset(name for name, _ in safe) | frozenset(_ANY_CASE + name.lower() for name, any_case in safe
                                                           if any_case) | SAFE_OTHERS


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
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
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
            return (f"this tenant already has {self._running[tenant]} analyst queries running (at most "
                    f"{self.per_tenant}); retry when one has finished")
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
        self._access = ServerAccess(clickhouse_url, stores.namespace) if clickhouse_url else None
        self._connect = lambda: connect(clickhouse_url, chdb_path, database=stores.namespace)
        self._functions: frozenset[str] | None = None
        self._executor = ThreadPoolExecutor(limits.concurrent_total, thread_name_prefix="prism-analyst-sql")
        self.admission = Admission(limits.concurrent, limits.concurrent_total, limits.queue_seconds,
                                   max(1, math.ceil(limits.seconds)))

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
        analyst = self._access.client(tenant)
        try:
            return self._checked_run(analyst, tenant, checked, csv)
        finally:
            analyst.close()

    def _checked(self, client, sql: str) -> str:
        """The query as one canonical statement, or a SqlFailed / SqlRefused saying why not."""
        try:  # passed as a value, never run: one statement back, or a syntax error
            # (in hex: the driver reads the text of a query, and would take "... LIMIT 0" for a metadata probe)
            canonical = client.query("SELECT formatQuerySingleLine(unhex(%(q)s))",
                                     parameters={"q": sql.encode().hex()}).result_rows[0][0]
        except Exception as error:
            raise SqlFailed(f"ClickHouse cannot parse the query: {_reason(error)}", "sql") from None
        if not re.match(r"(?i)(SELECT|WITH)\b|\(", canonical):  # no need to ask EXPLAIN about SYSTEM, SET, USE...
            raise SqlRefused(_ONE_SELECT, "sql")
        if escaped_names(canonical):
            raise SqlRefused("quoted names with escapes (newlines, quotes...) are not allowed", "sql")
        try:
            ast = client.raw_query(f"EXPLAIN AST {canonical}", fmt=EXPLAIN_FORMAT).decode().splitlines()
        except Exception as error:
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
        found = client.query("SELECT name FROM system.tables WHERE database = %(d)s AND name IN %(n)s LIMIT 1",
                             parameters={"d": self.database, "n": tuple(names)}).result_rows
        return f"table {found[0][0]} is not available; name the CTE otherwise" if found else None

    def _checked_run(self, client, tenant: str, sql: str, csv: bool) -> Result | bytes:
        try:
            result = client.query(self._bounded(sql), settings=self._settings(tenant))
        except Exception as error:
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
        return (f"SELECT * FROM ({sql}) QUALIFY throwIf(sum(byteSize(*)) OVER (ROWS BETWEEN UNBOUNDED PRECEDING "
                f"AND CURRENT ROW) > {cap}, '{_TOO_BIG} {cap} bytes') = 0 LIMIT {self.limits.rows + 1}")

    def _failure(self, reason: str) -> str:
        if _TOO_BIG in reason:
            return (f"the query's result is larger than {self.limits.bytes:,} bytes (PRISM_SQL_MAX_BYTES); "
                    "select fewer or smaller columns, aggregate or add a LIMIT")
        return f"the query failed: {reason}"

    def _settings(self, tenant: str) -> dict[str, Any]:
        """Limits and the tenant filter first: ``readonly`` last, after which nothing may change a setting."""
        return {
            "max_execution_time": self.limits.seconds, "timeout_overflow_mode": "throw",
            "max_memory_usage": self.limits.memory_bytes,
            "max_result_bytes": self.limits.bytes, "result_overflow_mode": "throw",
            "max_threads": self.limits.threads,
            "os_thread_priority": 19,  # the lowest: readers and health checks come first on shared cores
            "additional_table_filters": {f"{self.database}.{t}": f"tenant_id = {_quote(tenant)}" for t in TABLES},
            "readonly": 1,
        }


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop has closed: nobody waits any more
        pass


class ServerAccess:
    """With a ClickHouse server, each tenant's queries run as a user of its own: granted SELECT on the
    served views only, with a row policy on each that keeps ``tenant_id`` to the tenant's, and readonly.

    This is the second wall behind the guard (the embedded engine has none: its only access storage is
    read-only, so ``CREATE USER`` fails there). The password is derived from the server's URL (which
    holds the administrator's credentials) so that every Prism process pointing at the server agrees on it.
    """

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def user(self, tenant: str) -> str:
        return "prism_analyst_" + hashlib.sha256(f"{self.database}/{tenant}".encode()).hexdigest()[:20]

    def password(self, tenant: str) -> str:
        return hmac.new(self.url.encode(), f"analyst/{self.database}/{tenant}".encode(), hashlib.sha256).hexdigest()

    def client(self, tenant: str):
        import clickhouse_connect

        self._provision(tenant)
        return clickhouse_connect.get_client(dsn=self.url, username=self.user(tenant), password=self.password(tenant),
                                             database=self.database)

    def statements(self, tenant: str) -> list[str]:
        """What makes the tenant's user: idempotent, so every process may run it once."""
        user, db = self.user(tenant), self.database
        password = _quote(self.password(tenant))
        return [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY {password} DEFAULT DATABASE {db} "
            "SETTINGS readonly = 2",  # 2: Prism may still set the limits per query; its own readonly=1 comes last
            f"ALTER USER {user} IDENTIFIED WITH sha256_password BY {password}",
            f"REVOKE ALL ON *.* FROM {user}",
            *(f"GRANT SELECT ON {db}.{view} TO {user}" for view in TABLES),
            *(f"CREATE ROW POLICY OR REPLACE {user}_{view} ON {db}.{view} USING tenant_id = {_quote(tenant)} "
              f"AS RESTRICTIVE TO {user}" for view in TABLES),
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
