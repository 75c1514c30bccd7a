"""The analysts' SQL guard: one SELECT over the tenant-filtered views, checked on ClickHouse's own parse tree.

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
and every statement but SELECT.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

TABLES = ("orders", "order_lines", "order_events", "products", "daily_orders")
_VIEWS = ", ".join(TABLES)


#: Function categories (``system.functions.categories``) that compute on their arguments only. "Other",
#: "Dictionary", "Introspection" and "Internal" hold the ones that reach files, settings, other tables or the server.
SAFE_CATEGORIES = frozenset(
    {
        "Aggregate Functions",
        "Type Conversion",
        "Dates and Times",
        "Arrays",
        "String",
        "Hash",
        "String Search",
        "JSON",
        "Mathematical",
        "URL",
        "Arithmetic",
        "Map",
        "IP Address",
        "Comparison",
        "Tuple",
        "Distance",
        "Random Number",
        "Bitmap",
        "Bit",
        "Encoding",
        "UUID",
        "String Splitting",
        "String Replacement",
        "Null",
        "Rounding",
        "Conditional",
        "Logical",
        "Financial",
        "Geo",
        "Geo Polygon",
        "Time Series",
        "Time Window",
    }
)
#: From "Other": the ones that only compute; ``lambda``, ``exists`` and ``untuple`` are syntax whose parts are printed
#: children.
SAFE_OTHERS = frozenset(
    {
        "bar",
        "byteSize",
        "countDigits",
        "finalizeAggregation",
        "formatReadableDecimalSize",
        "formatReadableQuantity",
        "formatReadableSize",
        "formatReadableTimeDelta",
        "identity",
        "ignore",
        "initializeAggregation",
        "isConstant",
        "isDecimalOverflow",
        "materialize",
        "neighbor",
        "parseReadableSize",
        "parseReadableSizeOrNull",
        "parseReadableSizeOrZero",
        "parseTimeDelta",
        "runningAccumulate",
        "runningDifference",
        "runningDifferenceStartingWithFirstValue",
        "throwIf",
        "toColumnTypeName",
        "toTypeName",
        "transform",
        "visibleWidth",
        "lambda",
        "exists",
        "untuple",
    }
)
_COMBINATORS = (
    "If",
    "Array",
    "Map",
    "Distinct",
    "OrDefault",
    "OrNull",
    "State",
    "Merge",
    "ForEach",
    "Resample",
    "SimpleState",
    "ArgMin",
    "ArgMax",
)
#: The IN family: their right side is a list or a subquery, never a table's name.
_IN = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"})
#: Names Prism gives its storage (``orders_v3``, ``orders_v3__staged``, checkpoints): never a CTE's name, so that a
#: CTE can never stand for a real table where the CTE is out of scope, even one created after the check.
_STORAGE_LIKE = re.compile(r"(?i)_v\d+($|_)|checkpoint|staged|^\.|inner")
_TRANSFORMERS = (
    "column transformers (APPLY, EXCEPT, REPLACE) and COLUMNS() matchers are not allowed: ClickHouse "
    "does not show what they run; name the columns instead"
)
ONE_SELECT = "only a single SELECT query is allowed (no INSERT, DDL, SYSTEM, INTO OUTFILE or several statements)"
#: Kinds refused with a message of their own (any other unknown kind is refused by name).
_REFUSED = {
    "Set": "a SETTINGS clause is not allowed; the limits and the tenant filter are set by Prism",
    "QueryParameter": "query parameters ({name:Type}) are not allowed; write the values in the query",
    **dict.fromkeys(
        (
            "ColumnsTransformerList",
            "ColumnsApplyTransformer",
            "ColumnsExceptTransformer",
            "ColumnsReplaceTransformer",
            "ColumnsReplaceTransformer::Replacement",
            "ColumnsRegexpMatcher",
            "ColumnsListMatcher",
            "QualifiedColumnsRegexpMatcher",
            "QualifiedColumnsListMatcher",
        ),
        _TRANSFORMERS,
    ),
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
    children: list[Node] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [child.kind for child in self.children]


def tree(ast: list[str]) -> Node | None:
    """``EXPLAIN AST`` lines (one space of indent per level) as a tree; None if the lines are not a well-formed tree."""
    root, stack = Node("", "", -1), list[Node]()
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


def refusal(
    ast: list[str],
    allowed_functions: frozenset[str],
    canonical: str = "",
    ctes: frozenset[str] = frozenset(),
    scan: Scan | None = None,
) -> str | None:
    """Why the query whose ``EXPLAIN AST`` lines these are (of ``canonical``) may not run, or None."""
    root = tree(ast)
    if root is None or len(root.children) != 1:
        return ONE_SELECT
    top = root.children[0]
    if (
        top.kind != "SelectWithUnionQuery"
        or top.kinds != ["ExpressionList", "Identifier"]
        or top.declared != 2
        or top.children[1].name != EXPLAIN_FORMAT
    ):  # any FORMAT but the driver's: the caller's
        return ONE_SELECT
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
    return None if node.kinds == ["ExpressionList"] else ONE_SELECT


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
    "SelectWithUnionQuery": _nested_select,
    "SelectIntersectExceptQuery": _nothing,
    "SelectQuery": _nothing,
    "ExpressionList": _nothing,
    "WithElement": _with_element,
    "Subquery": _subquery,
    "TablesInSelectQuery": _nothing,
    "TablesInSelectQueryElement": _nothing,
    "TableExpression": _table_expression,
    "TableIdentifier": _table,
    "TableJoin": _nothing,
    "ArrayJoin": _nothing,
    "Identifier": _nothing,
    "Literal": _nothing,
    "Function": _function,
    "Asterisk": _asterisk,
    "QualifiedAsterisk": _qualified_asterisk,
    "OrderByElement": _nothing,
    "InterpolateElement": _nothing,
    "WindowDefinition": _nothing,
    "WindowListElement": _nothing,
    "SampleRatio": _nothing,
}
ALLOWED_KINDS = frozenset(_CHECKS)


#: How ``safe_functions`` marks a case-insensitive one (``COUNT``, ``Sum``), by its lower-case name.
_ANY_CASE = "any case:"


def _allowed(name: str, allowed: frozenset[str]) -> bool:
    """A safe function, or a safe aggregate with combinators (``sumIf``, ``uniqExactState``...)."""
    while name not in allowed and _ANY_CASE + name.lower() not in allowed:
        stripped = next((name[: -len(c)] for c in _COMBINATORS if name.endswith(c) and len(name) > len(c)), None)
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
    """Every ``name AS (`` of the text: the CTEs (and window names: harmless as table names, they name no table)."""
    text = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[0] == "`" else "''", canonical)
    return frozenset(quoted or plain for quoted, plain in _CTE.findall(text))


def safe_functions(client) -> frozenset[str]:
    """The functions analysts may call: by category, aliases included, from the engine's own list."""
    rows = client.query("SELECT name, categories, alias_to, case_insensitive FROM system.functions").result_rows
    categories = {name: category for name, category, _, _ in rows}
    safe = {
        (name, any_case)
        for name, category, alias_to, any_case in rows
        if (categories.get(alias_to, category) if alias_to else category) in SAFE_CATEGORIES
        or name in SAFE_OTHERS
        or alias_to in SAFE_OTHERS
    }
    return (
        frozenset(name for name, _ in safe)
        | frozenset(_ANY_CASE + name.lower() for name, any_case in safe if any_case)
        | SAFE_OTHERS
    )
