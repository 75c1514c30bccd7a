"""Analysts' SQL over HTTP: a tenant sees only its own rows, cannot write, cannot leave its views."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import open_shop


@pytest.fixture
async def two_shops(http, api_tenant):
    other = f"{api_tenant}-b"
    await open_tenant(http, other, "Other")
    mine, made = await open_shop(http, api_tenant)
    theirs, made_there = await open_shop(http, other)
    return mine, made, theirs, made_there


async def sql(shop, query: str, position: int, **extra):
    return await shop.http.post(
        "/analytics/sql", json={"sql": query, **extra}, headers=shop.headers, params={"min_position": position}
    )


async def test_each_tenant_sees_only_its_own_rows_in_every_view(two_shops):
    mine, made, theirs, made_there = two_shops
    position = made_there["order"]["position"]
    for view in ("orders", "order_lines", "order_events", "products"):
        for shop in (mine, theirs):
            answer = await sql(shop, f"SELECT DISTINCT tenant_id FROM {view}", position)
            assert answer.status_code == 200, answer.text
            assert answer.json()["rows"] == [[shop.tenant]], view
    joined = await sql(
        mine,
        "SELECT o.order_id, sum(l.line_total) FROM orders o JOIN order_lines l "
        "ON l.order_id = o.order_id GROUP BY o.order_id",
        position,
    )
    assert joined.json()["rows"] == [[made["order"]["id"], "25.00"]]
    assert joined.headers["X-Prism-Position"] and int(joined.headers["X-Prism-Position"]) >= position


async def test_everyday_analyst_sql_passes_the_guard(two_shops):
    mine, made, _, _ = two_shops
    answer = await sql(
        mine,
        "SELECT toStartOfMonth(placed_at) AS m, countIf(status != 'cancelled') AS n, "
        "round(avgIf(total, total > 0), 2) AS aov, arrayMap(x -> x * 2, [1, 2]) AS a, "
        "row_number() OVER (ORDER BY m) AS r, multiIf(n > 0, 'some', 'none') AS label "
        "FROM orders WHERE order_id IN (SELECT order_id FROM order_lines) GROUP BY m",
        made["order"]["position"],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"][0][1:] == [1, 25.0, [2, 4], 1, "some"]


async def test_csv_answers_carry_a_header_row(two_shops):
    mine, made, _, _ = two_shops
    answer = await sql(mine, "SELECT order_id, total FROM orders", made["order"]["position"], format="csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text.splitlines() == ['"order_id","total"', f'"{made["order"]["id"]}","25.00"']


@pytest.mark.parametrize(
    "query, expect, words",
    [
        ("INSERT INTO orders (tenant_id) VALUES ('x')", 400, "only a single SELECT"),
        ("DROP TABLE orders", 400, "only a single SELECT"),
        ("ALTER TABLE orders DELETE WHERE 1", 400, "only a single SELECT"),
        ("SELECT * FROM orders INTO OUTFILE '/tmp/leak.csv'", 400, "only a single SELECT"),
        ("SELECT 1; DROP TABLE orders", 422, "Multi-statements are not allowed"),
        ("SELECT count() FROM orders -- ;\n; SELECT * FROM system.tables", 422, "Multi-statements"),
        ("SELECT * FROM system.query_log", 400, "table system.query_log is not available"),
        ("SELECT name FROM system.tables", 400, "table system.tables is not available"),
        ("SELECT count() FROM orders_v1", 400, "table orders_v1 is not available"),
        ("SELECT count() FROM prismtest.orders", 400, "table prismtest.orders is not available"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 400, "table function file() is not allowed"),
        ("SELECT * FROM numbers(10)", 400, "table function numbers() is not allowed"),
        ("SELECT count() FROM orders WHERE order_id IN (SELECT order_id FROM orders_v1)", 400, "orders_v1"),
        ("SELECT count() FROM orders SETTINGS additional_table_filters = {}", 400, "SETTINGS clause is not allowed"),
        ("SELECT count() FROM orders SETTINGS readonly = 0", 400, "SETTINGS clause is not allowed"),
        ("SELECT count() FROM (SELECT * FROM orders SETTINGS max_threads = 1)", 400, "SETTINGS clause"),
        ("SELECT arrayJoin(range(20000))", 422, "more than 10000 rows"),
        ("SELECT nonsense FROM orders", 422, "nonsense"),
        ("SELECT file('/etc/passwd')", 400, "function file() is not available"),
        ("SELECT count() FROM orders WHERE note = file('/etc/hostname')", 400, "function file()"),
        ("SELECT getSetting('additional_table_filters')", 400, "function getSetting()"),
        ("SELECT getServerSetting('path')", 400, "function getServerSetting()"),
        ("SELECT hasColumnInTable('prismtest', 'orders_v1', 'total')", 400, "function hasColumnInTable()"),
        ("SELECT dictGet('d', 'x', 1)", 400, "function dictGet()"),
        ("SELECT 0 IN system.one", 400, "IN takes a list or a subquery"),
        ("SELECT count() FROM orders WHERE 1 IN orders_v1", 400, "IN takes a list or a subquery"),
        ("SELECT * APPLY(x -> (SELECT groupArray(tenant_id) FROM orders_v1)) FROM orders", 400, "column transformers"),
        (
            "SELECT * REPLACE((SELECT groupArray(name) FROM system.tables) AS tenant_id) FROM orders",
            400,
            "column transformers",
        ),
        (
            "SELECT COLUMNS('id') APPLY(x -> (SELECT count() FROM system.processes)) FROM orders",
            400,
            "COLUMNS() matchers",
        ),
        ("SELECT (SELECT groupArray(tenant_id) FROM orders_v1).*", 400, "(expression).* is not allowed"),
        ("SELECT inIgnoreSet(order_id, orders_v1) FROM orders", 400, "function inIgnoreSet()"),
        ("SELECT joinGet('orders_v1', 'total', 1)", 400, "function joinGet()"),
        (
            "WITH t AS (SELECT * FROM orders SETTINGS additional_table_filters = {}) SELECT * FROM t",
            400,
            "SETTINGS clause",
        ),
        ("SELECT * FROM merge(currentDatabase(), 'orders_v')", 400, "table function merge()"),
        ("SELECT repeat('x', 100000) FROM (SELECT arrayJoin(range(1000)) AS a)", 422, "larger than 10,000,000 bytes"),
    ],
)
async def test_what_the_guard_refuses(two_shops, query, expect, words):
    mine, made, _, _ = two_shops
    answer = await sql(mine, query, made["order"]["position"])
    assert answer.status_code == expect, answer.text
    body = answer.json()
    assert body["code"] == ("sql_refused" if expect == 400 else "sql_failed") and words in body["message"], body


async def test_values_without_a_json_type_answer_as_text_not_a_500(two_shops):
    mine, made, _, _ = two_shops
    answer = await sql(
        mine,
        "SELECT toIPv4('1.2.3.4') AS ip, toIPv6('::1') AS ip6, map(toIPv4('1.1.1.1'), 1) AS m, "
        "tuple(1, 'a') AS t, [[toUUID('00000000-0000-0000-0000-000000000001')]] AS ids, "
        "CAST('a', 'Enum8(\\'a\\' = 1)') AS e, toFixedString('ab', 2) AS b",
        made["order"]["position"],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [
        ["1.2.3.4", "::1", {"1.1.1.1": 1}, [1, "a"], [["00000000-0000-0000-0000-000000000001"]], "a", "ab"]
    ]


async def test_the_daily_rollup_is_as_fresh_as_the_checkpoint_and_scoped_by_tenant(two_shops, stores):
    mine, made, theirs, _made_there = two_shops
    cancelled = await mine.post(f"/orders/{made['order']['id']}/cancel", {"reason": "late", "expected_version": 1})
    # No schedule to wait for: the daily rollup sums the hourly one a batch recomputes before its checkpoint.
    answer = await sql(
        mine, "SELECT status, sum(orders), sum(revenue) FROM daily_orders GROUP BY status", cancelled["position"]
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [["cancelled", 1, "25.00"]]
    theirs_rows = (await sql(theirs, "SELECT DISTINCT tenant_id FROM daily_orders", cancelled["position"])).json()
    assert theirs_rows["rows"] in ([], [[theirs.tenant]])
