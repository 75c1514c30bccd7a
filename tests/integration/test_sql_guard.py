"""The analysts' SQL guard against a corpus of hostile queries, on the embedded engine with two tenants' data.

Every hostile query must be refused with a 400 naming what was refused (or a 422 where ClickHouse's own
parser stops it), or answer only the caller's rows: an answer carrying anything of the other tenant
fails. Everyday analysts' queries must keep answering, with the right figures.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest
import pytest_asyncio

from readers.analytics_sql import AnalystSql, Limits, Result, ServerAccess, SqlFailed, SqlRefused
from readers.sql_guard import TABLES
from tests.conftest import NAMESPACE
from workers.catch_up import catch_up
from write import commands as c

NS = NAMESPACE
TRANSFORMERS = "column transformers"
ONE_SELECT = "only a single SELECT"
SETTINGS = "SETTINGS clause is not allowed"
MULTI = "422:Multi-statements are not allowed"
#: May run, or fail, but must never show the other tenant's rows.
ONLY_MINE = None


async def _shop(bus, tenant: str, prices: list[str], orders: list[list[tuple[int, int]]]) -> dict[str, list[str]]:
    """A tenant with a customer, products at ``prices``, ``orders`` of (product, quantity); the last one cancelled."""
    await bus.execute(c.RegisterTenant(tenant, f"Shop {tenant}"))
    customer = (await bus.execute(c.RegisterCustomer(tenant, f"Customer of {tenant}", f"{tenant}@x.io"))).id
    products = [
        (await bus.execute(c.AddProduct(tenant, f"Product {n} of {tenant}", Decimal(p)))).id
        for n, p in enumerate(prices)
    ]
    placed = [
        (
            await bus.execute(
                c.PlaceOrder(
                    tenant, uuid.UUID(customer), tuple(c.OrderLine(uuid.UUID(products[i]), q) for i, q in lines)
                )
            )
        ).id
        for lines in orders
    ]
    await bus.execute(c.CancelOrder(tenant, uuid.UUID(placed[-1]), 1, "changed mind"))
    return {"customer": [customer], "products": products, "orders": placed}


@pytest_asyncio.fixture(scope="module")
async def shops(bus, write_engine, projections):
    """Mine: 3 orders (10.00, 25.00, 10.00 cancelled), 4 lines; theirs: 2 orders of other products."""
    mine, theirs = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    made = await _shop(bus, mine, ["10.00", "2.50"], [[(0, 1)], [(0, 2), (1, 2)], [(1, 4)]])
    made_there = await _shop(bus, theirs, ["7.00"], [[(0, 3)], [(0, 1)]])
    for projection in projections.values():
        await catch_up(write_engine, projection, batch_size=500)
    return mine, made, theirs, made_there


@pytest_asyncio.fixture(scope="module")
async def analyst(fresh_services, stores, projections):
    sql = AnalystSql(
        stores,
        fresh_services.clickhouse_url,
        str(fresh_services.chdb_path),
        Limits(seconds=5, rows=10_000, concurrent=4, concurrent_total=4),
    )
    yield sql
    sql.close()


def _leaks(answer: Result | bytes, theirs: str, made_there: dict[str, list[str]]) -> list[str]:
    """The other tenant's identifiers that the answer shows."""
    text = answer.decode() if isinstance(answer, bytes) else json.dumps([answer.columns, answer.rows])
    secrets = [theirs, *made_there["orders"], *made_there["products"], *made_there["customer"]]
    return [s for s in secrets if s in text]


HOSTILE = [
    # Column transformers and matchers: EXPLAIN AST prints them without the lambdas and subqueries they run.
    ("SELECT * APPLY(x -> (SELECT groupArray(tenant_id) FROM orders_v1)) FROM orders", TRANSFORMERS),
    (f"SELECT * APPLY(x -> (SELECT groupArray(tenant_id) FROM {NS}.orders_v1)) FROM orders", TRANSFORMERS),
    ("SELECT * REPLACE((SELECT groupArray(tenant_id) FROM orders_v1) AS tenant_id) FROM orders", TRANSFORMERS),
    ("SELECT * EXCEPT (order_id) APPLY(x -> (SELECT groupArray(name) FROM system.tables)) FROM orders", TRANSFORMERS),
    ("SELECT COLUMNS('tenant') APPLY(x -> (SELECT groupArray(query) FROM system.processes)) FROM orders", TRANSFORMERS),
    (
        "SELECT o.* APPLY(x -> (SELECT any(tenant_id) FROM orders_v1 WHERE tenant_id != x)) FROM orders AS o",
        TRANSFORMERS,
    ),
    ("SELECT COLUMNS(tenant_id) APPLY(toString) FROM orders", TRANSFORMERS),
    ("SELECT o.COLUMNS('id') FROM orders AS o", TRANSFORMERS),
    ("SELECT o.COLUMNS(order_id, tenant_id) FROM orders AS o", TRANSFORMERS),
    ("SELECT * APPLY(sum) FROM (SELECT total FROM orders)", TRANSFORMERS),
    ("SELECT * EXCEPT(tenant_id) FROM orders", TRANSFORMERS),
    ("SELECT * REPLACE(1 AS total) FROM orders", TRANSFORMERS),
    ("SELECT COLUMNS('.*') FROM orders", TRANSFORMERS),
    ("SELECT * APPLY(x -> dictGet('d', 'a', x)) FROM orders", TRANSFORMERS),
    ("SELECT count() FROM (SELECT * APPLY(x -> (SELECT 1 FROM system.one)) FROM orders)", TRANSFORMERS),
    (
        "WITH t AS (SELECT * APPLY(x -> (SELECT groupArray(tenant_id) FROM orders_v1)) FROM orders) SELECT * FROM t",
        TRANSFORMERS,
    ),
    ("SELECT (SELECT groupArray(tenant_id) FROM orders_v1).*", "(expression).* is not allowed"),
    ("SELECT tuple((SELECT groupArray(tenant_id) FROM orders_v1)).* FROM orders", "(expression).* is not allowed"),
    # Lambdas and subqueries in every clause reaching the versioned tables or system tables.
    ("SELECT arrayMap(x -> x, (SELECT groupArray(tenant_id) FROM orders_v1))", "table orders_v1"),
    ("SELECT arrayMap(x -> (SELECT count() FROM system.tables), [1])", "table system.tables"),
    ("SELECT x -> (SELECT 1 FROM orders_v1)", "table orders_v1"),
    ("SELECT lambda(tuple(x), (SELECT groupArray(tenant_id) FROM orders_v1))", "table orders_v1"),
    ("SELECT arrayFold((acc, x) -> acc, [1], (SELECT groupArray(tenant_id) FROM orders_v1))", "table orders_v1"),
    ("SELECT * FROM orders WHERE total > (SELECT max(total) FROM orders_v1)", "table orders_v1"),
    ("SELECT sum(total) OVER (PARTITION BY (SELECT any(tenant_id) FROM orders_v1)) FROM orders", "table orders_v1"),
    ("SELECT count() OVER w FROM orders WINDOW w AS (PARTITION BY (SELECT 1 FROM system.one))", "table system.one"),
    ("SELECT * FROM orders ARRAY JOIN (SELECT groupArray(tenant_id) FROM orders_v1) AS x", "table orders_v1"),
    ("SELECT * FROM orders LIMIT (SELECT count() FROM orders_v1)", "table orders_v1"),
    ("SELECT * FROM orders QUALIFY (SELECT count() FROM orders_v1) > 0", "table orders_v1"),
    ("SELECT * FROM orders ORDER BY (SELECT 1 FROM system.one)", "table system.one"),
    (
        "SELECT tenant_id FROM orders GROUP BY tenant_id HAVING count() > (SELECT count() FROM system.tables)",
        "table system.tables",
    ),
    ("SELECT * FROM orders LIMIT 1 BY (SELECT 1 FROM orders_v1)", "table orders_v1"),
    (
        "SELECT order_id FROM orders ORDER BY placed_at WITH FILL FROM (SELECT min(placed_at) FROM orders_v1)",
        "table orders_v1",
    ),
    ("SELECT (SELECT groupArray(tenant_id) FROM orders_v1)", "table orders_v1"),
    (
        "SELECT count() FROM orders WHERE (SELECT count() FROM orders_v1 AS v WHERE v.tenant_id != 'x') > 0",
        "table orders_v1",
    ),
    # The versioned tables, Prism's own tables, qualified names, other databases, system tables.
    ("SELECT * FROM orders_v1", "table orders_v1"),
    ("SELECT * FROM order_lines_v1", "table order_lines_v1"),
    ("SELECT * FROM order_events_v1", "table order_events_v1"),
    ("SELECT * FROM products_v1", "table products_v1"),
    ("SELECT * FROM daily_orders_v1", "table daily_orders_v1"),
    ("SELECT * FROM order_hours", "table order_hours"),  # the rollups span tenants
    ("SELECT * FROM product_days_v1", "table product_days_v1"),
    ("SELECT * FROM checkpoints", "table checkpoints"),
    ("SELECT * FROM order_analytics_checkpoint", "table order_analytics_checkpoint"),
    (f"SELECT * FROM {NS}.orders", f"table {NS}.orders"),
    (f"SELECT * FROM {NS}.orders_v1", f"table {NS}.orders_v1"),
    (f"SELECT * FROM `{NS}`.`orders`", f"table {NS}.orders"),
    ("SELECT * FROM default.orders", "table default.orders"),
    ("SELECT * FROM `orders x`", "table orders x"),
    ("SELECT * FROM system.one", "table system.one"),
    ("SELECT * FROM system.tables", "table system.tables"),
    ("SELECT * FROM system.processes", "table system.processes"),
    ("SELECT * FROM system.query_log", "table system.query_log"),
    ("SELECT * FROM system.settings", "table system.settings"),
    ("SELECT * FROM information_schema.tables", "table information_schema.tables"),
    ("SELECT * FROM INFORMATION_SCHEMA.COLUMNS", "table INFORMATION_SCHEMA.COLUMNS"),
    ("SELECT * FROM orders AS o JOIN orders_v1 AS v ON v.order_id = o.order_id", "table orders_v1"),
    ("SELECT * FROM orders AS a PASTE JOIN orders_v1 AS b", "table orders_v1"),
    ("SELECT * FROM (SELECT 1) AS x, orders_v1", "table orders_v1"),
    ("SELECT * FROM orders AS o JOIN (SELECT * FROM system.one) AS s ON 1", "table system.one"),
    ("SELECT tenant_id FROM orders UNION ALL SELECT tenant_id FROM orders_v1", "table orders_v1"),
    ("SELECT tenant_id FROM orders UNION DISTINCT SELECT name FROM system.databases", "table system.databases"),
    ("SELECT order_id FROM orders INTERSECT SELECT order_id FROM orders_v1", "table orders_v1"),
    ("SELECT order_id FROM orders EXCEPT SELECT order_id FROM orders_v1", "table orders_v1"),
    ("SELECT * FROM orders WHERE order_id IN (SELECT order_id FROM orders_v1)", "table orders_v1"),
    ("SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM orders_v1)", "table orders_v1"),
    # CTEs named like tables, out of their scope, or over forbidden tables.
    ("WITH orders_v1 AS (SELECT 1) SELECT * FROM orders_v1", "table orders_v1"),
    ("WITH `orders_v1` AS (SELECT 1) SELECT * FROM `orders_v1`", "table orders_v1"),
    ("WITH checkpoints AS (SELECT 1) SELECT * FROM checkpoints", "table checkpoints"),
    ("WITH daily_orders_v2 AS (SELECT 1) SELECT * FROM daily_orders_v2", "table daily_orders_v2"),
    ("SELECT * FROM (WITH orders_v1 AS (SELECT 1) SELECT * FROM orders_v1) AS a, orders_v1", "table orders_v1"),
    ("SELECT * FROM (WITH tables AS (SELECT 1) SELECT * FROM tables) AS a, system.tables", "table system.tables"),
    ("SELECT * FROM (WITH x AS (SELECT 1 AS n) SELECT * FROM x) AS a CROSS JOIN x", ONLY_MINE),
    ("WITH orders AS (SELECT * FROM orders_v1) SELECT * FROM orders", "table orders_v1"),
    ("WITH RECURSIVE r AS (SELECT * FROM orders_v1) SELECT * FROM r", "table orders_v1"),
    ("WITH t AS (SELECT * FROM file('/etc/passwd')) SELECT * FROM t", "table function file()"),
    # IN <table>, the *IgnoreSet functions, joinGet, dictionaries.
    ("SELECT 1 IN orders_v1", "IN takes a list or a subquery"),
    ("SELECT 1 IN (orders_v1)", "IN takes a list or a subquery"),
    ("SELECT count() FROM orders WHERE order_id IN orders_v1", "IN takes a list or a subquery"),
    ("SELECT count() FROM orders WHERE order_id NOT IN orders_v1", "IN takes a list or a subquery"),
    ("SELECT count() FROM orders WHERE order_id GLOBAL IN orders_v1", "IN takes a list or a subquery"),
    (f"SELECT count() FROM orders WHERE order_id GLOBAL NOT IN {NS}.orders_v1", "IN takes a list or a subquery"),
    ("SELECT 1 FROM orders WHERE tuple(order_id) IN orders_v1", "IN takes a list or a subquery"),
    ("SELECT nullIn(1, orders_v1)", "IN takes a list or a subquery"),
    ("SELECT inIgnoreSet(order_id, orders_v1) FROM orders", "function inIgnoreSet()"),
    ("SELECT notInIgnoreSet(order_id, orders_v1) FROM orders", "function notInIgnoreSet()"),
    ("SELECT globalInIgnoreSet(1, system.one)", "function globalInIgnoreSet()"),
    ("SELECT nullInIgnoreSet(1, orders_v1)", "function nullInIgnoreSet()"),
    ("SELECT globalNotNullInIgnoreSet(1, orders_v1)", "function globalNotNullInIgnoreSet()"),
    (f"SELECT joinGet('{NS}.orders_v1', 'total', 1)", "function joinGet()"),
    ("SELECT joinGetOrNull('orders_v1', 'total', 1)", "function joinGetOrNull()"),
    ("SELECT dictGet('d', 'a', 1)", "function dictGet()"),
    ("SELECT dictGetOrDefault('d', 'a', 1, 'x')", "function dictGetOrDefault()"),
    ("SELECT dictHas('d', 1)", "function dictHas()"),
    ("SELECT * FROM dictionary('d')", "table function dictionary()"),
    # SETTINGS anywhere.
    ("SELECT count() FROM orders SETTINGS additional_table_filters = {}", SETTINGS),
    ("SELECT count() FROM orders SETTINGS readonly = 0", SETTINGS),
    ("SELECT * FROM (SELECT * FROM orders SETTINGS additional_table_filters = {})", SETTINGS),
    ("WITH t AS (SELECT * FROM orders SETTINGS additional_table_filters = {}) SELECT * FROM t", SETTINGS),
    ("SELECT count() FROM orders WHERE order_id IN (SELECT order_id FROM orders SETTINGS readonly = 0)", SETTINGS),
    ("SELECT 1 UNION ALL SELECT count() FROM orders SETTINGS additional_table_filters = {}", SETTINGS),
    ("SELECT (SELECT count() FROM orders SETTINGS additional_table_filters = {'x': '1'})", SETTINGS),
    # INTO OUTFILE, FORMAT, several statements, comments hiding statements.
    ("SELECT * FROM orders INTO OUTFILE '/tmp/prism-leak.csv'", ONE_SELECT),
    ("SELECT * FROM orders INTO OUTFILE '/tmp/prism-leak.csv' TRUNCATE", ONE_SELECT),
    ("SELECT * FROM orders FORMAT JSON", ONE_SELECT),
    ("SELECT * FROM orders FORMAT TabSeparated", ONE_SELECT),
    ("SELECT 1; SELECT * FROM orders_v1", MULTI),
    ("SELECT 1; DROP TABLE orders", MULTI),
    ("SELECT count() FROM orders -- ;\n; SELECT * FROM system.tables", MULTI),
    ("SELECT count() FROM orders /* ; */ ; SELECT * FROM orders_v1", MULTI),
    ("/* SELECT 1 */ SELECT * FROM orders_v1", "table orders_v1"),
    ("SELECT 1 -- \nFROM orders_v1", "table orders_v1"),
    # Everything but SELECT.
    ("EXPLAIN SELECT * FROM orders_v1", ONE_SELECT),
    ("EXPLAIN AST SELECT 1", ONE_SELECT),
    ("EXPLAIN PIPELINE SELECT * FROM orders", ONE_SELECT),
    ("SHOW TABLES", ONE_SELECT),
    ("SHOW CREATE TABLE orders_v1", ONE_SELECT),
    ("SHOW DATABASES", ONE_SELECT),
    ("DESCRIBE orders_v1", ONE_SELECT),
    ("DESCRIBE TABLE orders", ONE_SELECT),
    ("DESC file('/etc/passwd')", ONE_SELECT),
    ("INSERT INTO orders_v1 SELECT * FROM orders_v1", ONE_SELECT),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", ONE_SELECT),
    ("DROP TABLE orders_v1", ONE_SELECT),
    ("ALTER TABLE orders_v1 DELETE WHERE 1", ONE_SELECT),
    ("SYSTEM FLUSH LOGS", ONE_SELECT),
    ("SET readonly = 0", ONE_SELECT),
    ("USE system", ONE_SELECT),
    ("KILL QUERY WHERE 1", ONE_SELECT),
    ("OPTIMIZE TABLE orders_v1", ONE_SELECT),
    ("EXISTS TABLE orders_v1", ONE_SELECT),
    ("CHECK TABLE orders_v1", ONE_SELECT),
    ("GRANT ALL ON *.* TO default", ONE_SELECT),
    # Table functions.
    (f"SELECT * FROM merge('{NS}', '.*')", "table function merge()"),
    ("SELECT * FROM merge(currentDatabase(), 'orders_v')", "table function merge()"),
    (f"SELECT * FROM cluster('default', '{NS}', 'orders_v1')", "table function cluster()"),
    ("SELECT * FROM clusterAllReplicas('default', system.one)", "table function clusterAllReplicas()"),
    (f"SELECT * FROM remote('127.0.0.1', '{NS}', 'orders_v1')", "table function remote()"),
    ("SELECT * FROM remoteSecure('127.0.0.1', system.one)", "table function remoteSecure()"),
    ("SELECT * FROM input('a String')", "table function input()"),
    ("SELECT * FROM view(SELECT * FROM orders_v1)", "table function view()"),
    (
        "SELECT * FROM viewIfPermitted(SELECT * FROM orders_v1 ELSE null('a String'))",
        "table function viewIfPermitted()",
    ),
    ("SELECT * FROM executable('id', 'TSV', 'a String')", "table function executable()"),
    ("SELECT * FROM s3('http://127.0.0.1/x', 'CSV')", "table function s3()"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT * FROM url('http://127.0.0.1:9200/', 'LineAsString')", "table function url()"),
    ("SELECT * FROM numbers(10)", "table function numbers()"),
    ("SELECT * FROM numbers_mt(10)", "table function numbers_mt()"),
    ("SELECT * FROM zeros(10)", "table function zeros()"),
    ("SELECT * FROM generateRandom('a Int8')", "table function generateRandom()"),
    ("SELECT * FROM values('a Int8', 1)", "table function values()"),
    ("SELECT * FROM null('a Int8')", "table function null()"),
    ("SELECT * FROM format(CSV, 'a\n1')", "table function format()"),
    ("SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')", "table function mysql()"),
    (
        "SELECT * FROM postgresql('127.0.0.1:55432', 'prism_write', 'orders', 'prism', 'prism')",
        "table function postgresql()",
    ),
    ("SELECT * FROM loop(orders_v1)", "table function loop()"),
    (f"SELECT * FROM mergeTreeIndex('{NS}', 'orders_v1')", "table function mergeTreeIndex()"),
    ("SELECT * FROM orders AS o JOIN numbers(10) AS n ON 1", "table function numbers()"),
    ("SELECT * FROM orders WHERE order_id IN (SELECT * FROM numbers(1))", "table function numbers()"),
    (
        f"SELECT count() FROM orders WHERE tenant_id IN (SELECT tenant_id FROM merge('{NS}', 'orders_v'))",
        "table function merge()",
    ),
    # Functions that reach past the arguments: files, settings, the server, other tables.
    ("SELECT file('/etc/passwd')", "function file()"),
    ("SELECT FILE('/etc/passwd')", "function FILE()"),
    ("SELECT `file`('/etc/passwd')", "function file()"),
    ("SELECT getSetting('additional_table_filters')", "function getSetting()"),
    ("SELECT * FROM orders WHERE tenant_id = getSetting('readonly')", "function getSetting()"),
    ("SELECT getServerSetting('path')", "function getServerSetting()"),
    (f"SELECT hasColumnInTable('{NS}', 'orders_v1', 'total')", "function hasColumnInTable()"),
    ("SELECT currentDatabase()", "function currentDatabase()"),
    ("SELECT currentUser()", "function currentUser()"),
    ("SELECT hostName()", "function hostName()"),
    ("SELECT getMacro('x')", "function getMacro()"),
    ("SELECT sleep(1)", "function sleep()"),
    ("SELECT sleepEachRow(1) FROM orders", "function sleepEachRow()"),
    ("SELECT __getScalar('x')", "function __getScalar()"),
    ("SELECT filesystemAvailable()", "function filesystemAvailable()"),
    ("SELECT queryID()", "function queryID()"),
    ("SELECT _CAST(1, 'String')", "function _CAST()"),
    ("SELECT formatQuery('SELECT 1')", "function formatQuery()"),
    # Parser tricks: parameters, names that would print as several lines, aliases named like tables.
    ("SELECT {p:String}", "422:"),
    ("SELECT * FROM {t:Identifier}", "422:"),
    ("SELECT 1 AS `a\nTableIdentifier orders`", "quoted names with escapes"),
    ("SELECT * FROM `orders` AS `orders_v1`", ONLY_MINE),
    ("SELECT * FROM orders AS o WHERE o.tenant_id != ''", ONLY_MINE),
    ("SELECT * FROM orders FINAL", ONLY_MINE),
    ("SELECT tenant_id FROM orders WHERE 1 OR 1", ONLY_MINE),
    ("SELECT * FROM orders WHERE tenant_id = '{theirs}'", ONLY_MINE),
    ("SELECT * FROM orders PREWHERE tenant_id = '{theirs}'", ONLY_MINE),
    ("SELECT * FROM order_lines AS l LEFT JOIN orders AS o ON 1", ONLY_MINE),
    ("SELECT * FROM orders AS o RIGHT JOIN products AS p ON 1", ONLY_MINE),
    ("SELECT * FROM orders SAMPLE 1 / 2", ONLY_MINE),
    ("SELECT * FROM orders, order_lines, products, order_events, daily_orders", ONLY_MINE),
    ("SELECT DISTINCT tenant_id FROM order_events", ONLY_MINE),
    ("SELECT * FROM (SELECT * FROM orders) AS t(a, b)", ONLY_MINE),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", ONLY_MINE),
]


def test_the_corpus_is_large_and_has_no_duplicates():
    queries = [query for query, _ in HOSTILE]
    assert len(queries) >= 100 and len(set(queries)) == len(queries)


@pytest.mark.parametrize("query, expect", HOSTILE, ids=[f"h{n:03d}" for n in range(len(HOSTILE))])
async def test_a_hostile_query_is_refused_or_sees_only_the_callers_rows(analyst, shops, query, expect):
    mine, _, theirs, made_there = shops
    query = query.replace("{theirs}", theirs)
    if expect is ONLY_MINE:
        try:
            answer = await analyst.run(mine, query)
        except (SqlRefused, SqlFailed):
            return
        assert not _leaks(answer, theirs, made_there), answer
        assert isinstance(answer, Result) and all(
            mine in json.dumps(row) for row in answer.rows if "tenant_id" in answer.columns
        )
        return
    failure = SqlFailed if expect.startswith("422:") else SqlRefused
    with pytest.raises(failure) as refused:
        await analyst.run(mine, query)
    assert expect.removeprefix("422:") in refused.value.message, refused.value.message


async def test_the_corpus_leaks_under_the_old_guard_on_transformers_but_not_under_this_one(analyst, shops, stores):
    """The probe's finding on this engine: the subquery of a transformer runs though EXPLAIN AST does not print it."""
    mine, _, theirs, _ = shops
    leak = "SELECT * APPLY(x -> (SELECT groupArray(DISTINCT tenant_id) FROM orders_v1)) FROM orders"
    with pytest.raises(SqlRefused, match="column transformers"):
        await analyst.run(mine, leak)
    # What the old guard let through does read every tenant's rows when run (here, unguarded, by Prism itself):
    rows = stores.clickhouse.query(
        f"SELECT * APPLY(x -> (SELECT groupArray(DISTINCT tenant_id) FROM "
        f"{NS}.orders_v1)) FROM {NS}.orders WHERE tenant_id = %(t)s LIMIT 1",
        parameters={"t": mine},
    ).result_rows
    assert theirs in json.dumps(rows, default=str)


EVERYDAY = [
    ("SELECT count() FROM orders", [[3]]),
    ("SELECT status, count() FROM orders GROUP BY status ORDER BY status", [["cancelled", 1], ["pending", 2]]),
    ("SELECT COUNT(*), SUM(total) FROM orders", [[3, "45.00"]]),
    (
        "WITH kept AS (SELECT order_id, total FROM orders WHERE status != 'cancelled') "
        "SELECT count(), sum(total) FROM kept",
        [[2, "35.00"]],
    ),
    ("WITH a AS (SELECT * FROM orders), b AS (SELECT order_id FROM a WHERE total > 20) SELECT count() FROM b", [[1]]),
    ("WITH (SELECT max(total) FROM orders) AS biggest SELECT biggest", [["25.00"]]),
    ("SELECT count() FROM orders AS o INNER JOIN order_lines AS l ON l.order_id = o.order_id", [[4]]),
    (
        "SELECT p.price, sum(l.quantity) FROM order_lines AS l JOIN products AS p ON p.product_id = l.product_id "
        "GROUP BY p.price ORDER BY p.price",
        [["2.50", 6], ["10.00", 3]],
    ),
    (
        "SELECT total, row_number() OVER (ORDER BY total DESC, order_id) AS r FROM orders ORDER BY r LIMIT 1",
        [["25.00", 1]],
    ),
    (
        "SELECT status, sum(total) OVER (PARTITION BY status) AS s FROM orders WHERE status = 'cancelled'",
        [["cancelled", "10.00"]],
    ),
    ("SELECT arrayJoin([1, 2, 3]) AS n ORDER BY n", [[1], [2], [3]]),
    ("SELECT count() FROM orders ARRAY JOIN [1, 2] AS x", [[6]]),
    ("SELECT count() FROM orders WHERE order_id IN (SELECT order_id FROM order_lines WHERE quantity >= 2)", [[2]]),
    (
        "SELECT k, n FROM (SELECT 'orders' AS k, count() AS n FROM orders UNION ALL "
        "SELECT 'lines' AS k, count() AS n FROM order_lines) ORDER BY k",
        [["lines", 4], ["orders", 3]],
    ),
    ("SELECT count() FROM products WHERE match(name, '.*')", [[2]]),
    ("SELECT o.*, l.line_no FROM orders AS o JOIN order_lines AS l USING (order_id) ORDER BY l.line_no LIMIT 0", []),
    ("SELECT count() > 0 FROM order_events", [[True]]),
    (
        "SELECT quantileExact(0.5)(total), uniqExact(order_id), countIf(status = 'pending') FROM orders",
        [["10.00", 3, 2]],
    ),
    ("SELECT n FROM (SELECT arrayJoin(range(5000)) AS n) ORDER BY n DESC LIMIT 3", [[4999], [4998], [4997]]),
    (
        "SELECT status, count() FROM orders GROUP BY GROUPING SETS ((status), ()) ORDER BY status",
        [["", 3], ["cancelled", 1], ["pending", 2]],
    ),
    (
        "SELECT multiIf(total > 20, 'big', 'small') AS size, count() FROM orders GROUP BY size ORDER BY size",
        [["big", 1], ["small", 2]],
    ),
]


@pytest.mark.parametrize("query, rows", EVERYDAY, ids=[f"e{n:02d}" for n in range(len(EVERYDAY))])
async def test_everyday_analyst_queries_keep_working(analyst, shops, query, rows):
    answer = await analyst.run(shops[0], query)
    assert answer.rows == rows


async def test_a_long_ordered_result_keeps_its_order(analyst, shops):
    answer = await analyst.run(shops[0], "SELECT n FROM (SELECT arrayJoin(range(5000)) AS n) ORDER BY n DESC")
    assert [row[0] for row in answer.rows] == list(range(4999, -1, -1))


async def test_values_without_a_json_type_answer_as_text(analyst, shops):
    answer = await analyst.run(
        shops[0],
        (
            "SELECT toIPv4('1.2.3.4') AS ip4, toIPv6('::1') AS ip6, "
            "toUUID('00000000-0000-0000-0000-000000000001') AS id, "
            "toDecimal64(1.5, 2) AS money, CAST('a', 'Enum8(\\'a\\' = 1)') AS enum, map(1, 'x') AS m, "
            "map(toIPv4('1.1.1.1'), 1) AS by_ip, tuple(1, 'a') AS pair, [[1, 2], [3]] AS nested, "
            "toFixedString('ab', 3) AS fixed, nan AS not_a_number, toDateTime64(0, 3, 'UTC') AS at, "
            "toInt128(1) AS big, [toIPv4('1.2.3.4')] AS ips"
        ),
    )
    assert json.loads(json.dumps(answer.rows, allow_nan=False)) == [
        [
            "1.2.3.4",
            "::1",
            "00000000-0000-0000-0000-000000000001",
            "1.50",
            "a",
            {"1": "x"},
            {"1.1.1.1": 1},
            [1, "a"],
            [[1, 2], [3]],
            "ab\x00",
            "nan",
            "1970-01-01T00:00:00",
            1,
            ["1.2.3.4"],
        ]
    ]
    csv = await analyst.run(shops[0], "SELECT toIPv4('1.2.3.4') AS ip, map(1, 'x') AS m", csv=True)
    assert csv.decode().splitlines() == ['"ip","m"', "\"1.2.3.4\",\"{'1': 'x'}\""]


async def test_the_server_access_statements_parse_on_the_engine(stores):
    """A ClickHouse server is not here to run them; its parser (the same engine's) at least takes each one."""
    access = ServerAccess("http://admin:secret@clickhouse:8123", stores.namespace)
    statements = access.statements("acme-shop")
    assert access.user("acme-shop").endswith("_analyst_acme-shop")
    assert sum("GRANT SELECT ON" in s for s in statements) == len(TABLES)
    assert not any("GRANT" in s and "_v" in s.split(" TO ")[0] for s in statements)  # views only, never tables
    for statement in statements:
        parsed = await asyncio.to_thread(
            stores.clickhouse.query, "SELECT formatQuerySingleLine(%(q)s)", parameters={"q": statement}
        )
        assert parsed.result_rows[0][0], statement
