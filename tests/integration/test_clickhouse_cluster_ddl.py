"""The ClickHouse statements on a cluster (``PRISM_CLICKHOUSE_CLUSTER``), checked by the engine's own parser.

No ClickHouse cluster is here, nor a server: the analytics projection and the analysts' access send their
statements to a client that records them (and answers set-up's few reads from a script), and the embedded engine's
parser (``formatQuerySingleLine``) takes each one and gives back its canonical text. That checks their grammar and
where each clause went, not what a live cluster does with them. With no cluster named the statements are the
one-node ones, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.binding import finalize_query

from infra.settings import Settings
from projections.base import Batch
from projections.layouts.clickhouse_cluster import WRITE_SETTINGS, ClusterMisconfigured, configure
from projections.order_analytics import OrderAnalytics
from projections.stores.clients import Stores
from readers.analytics_sql import AnalystSql, Limits
from readers.sql_guard import TABLES
from write import events as e
from write.events import StoredEvent

#: A server the statements name (its credentials make the analysts' passwords); nothing connects to it.
URL = "http://admin:secret@clickhouse:8123"
CLUSTER = "analytics"
ORDER, CUSTOMER, PRODUCT = (uuid.UUID(int=n) for n in (1, 2, 3))
AT = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)

#: The digest of each flow's one-node statements, taken from the code before the cluster form existed.
ONE_NODE_DIGESTS = {
    "setup": "a6f786a2724f626a073cdbc01d46f51c3f2846bcc9abd6f2dee66f8a8291b5b2",
    "setup_over_an_earlier_release": "ff01a44a4ea26e4da09d7aa29c602caa03ce676d8d5b057e8517a682560fdaaf",
    "serve": "76e8a846ac995460c6dcc2017a6daee29706e0ed0440a2619f3e9998439df3c3",
    "drop": "cadb45955f72eeb8f55b507dd0ad2d7b69f62d067acfeae965f9e663ff89817f",
    "apply": "3f2b1783918f6cac2d7ccb133b8ea1ec800b15a84ad340422b6c346ba80e3eb0",
    "forget": "6a808a5d47774b42b0be84ab7a21d41def814f11ee3d8f66d9bab2a6b39d2d85",
    "grants": "76f6630ef00d0ae9281629e1dd887c07b4bcb0d89e202737031c348ed565eda0",
}


class Recorder:
    """A ClickHouse client with no server: keeps every statement it is sent, as the driver would send it, and
    answers reads from ``answers`` (rows by a piece of the query's text) and ``EXISTS TABLE`` from ``existing``."""

    def __init__(self, existing: set[str] | None = None, answers: dict[str, list[tuple]] | None = None) -> None:
        self.existing, self.answers = existing or set(), answers or {}
        self.sent: list[str] = []

    def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: Any = None) -> int | None:
        if sql.startswith("EXISTS TABLE"):
            return int(sql.split()[-1] in self.existing)
        self.sent.append(finalize_query(sql, parameters))
        return None

    def query(self, sql: str, parameters: dict[str, Any] | None = None, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(result_rows=next((rows for text, rows in self.answers.items() if text in sql), []))


def projection(recorder: Recorder, cluster: str) -> OrderAnalytics:
    stores = Stores(namespace="prism", clickhouse=recorder)
    configure(stores, URL, cluster)  # as the composition root does with the settings
    return OrderAnalytics(stores, 1)


def events() -> list[StoredEvent]:
    items = [{"line_no": 1, "product_id": str(PRODUCT), "quantity": 2, "unit_price": "5.00", "line_total": "10.00"}]
    order = {
        "order_id": str(ORDER),
        "customer": {"id": str(CUSTOMER)},
        "status": "placed",
        "items": items,
        "subtotal": "10.00",
        "discount_percent": "0",
        "discount": "0.00",
        "total": "10.00",
        "placed_at": AT.isoformat(),
        "confirmed_at": None,
        "shipped_at": None,
        "cancelled_at": None,
    }
    product = {"product_id": str(PRODUCT), "name": "Widget", "price": "5.00"}
    return [
        StoredEvent(n, uuid.UUID(int=100 + n), "acme", "order", ORDER, n, kind, 1, AT, payload)
        for n, kind, payload in ((1, e.PRODUCT_ADDED, product), (2, e.ORDER_PLACED, {"order": order}))
    ]


async def rendered(cluster: str) -> dict[str, list[str]]:
    """Every statement set-up (new, and over an earlier release's version), serve, drop, a batch, forgetting an
    order and an analyst's first query issue, by flow."""
    fresh = projection(Recorder(), cluster)
    await fresh.setup()
    t = fresh.tables
    earlier = projection(  # facts without rollups, daily_orders a refreshed view, order_hours a table, served
        Recorder(
            existing={t.orders, t.order_hours},
            answers={
                "SELECT engine": [("MaterializedView",)],
                "SELECT as_select": [(f"SELECT name FROM x WHERE name = '{t.version_key}'",)],
            },
        ),
        cluster,
    )
    await earlier.setup()
    flows = {"setup": fresh.client.sent, "setup_over_an_earlier_release": earlier.client.sent}
    touched = {
        "toHour(placed_at) FROM": [("acme", date(2026, 11, 3), 9)],
        "toString(product_id) FROM": [("acme", date(2026, 11, 3), str(PRODUCT))],
    }
    for flow, run in (
        ("serve", lambda p: p.serve()),
        ("drop", lambda p: p.drop()),
        ("apply", lambda p: p.apply(Batch(events(), 2))),
        ("forget", lambda p: p.forget([str(ORDER)], [])),
    ):
        worked = projection(Recorder(answers=touched), cluster)
        await run(worked)
        flows[flow] = worked.client.sent
    return flows | {"grants": _analysts_statements(cluster)}


def _analysts_statements(cluster: str) -> list[str]:
    stores = Stores(namespace="prism")
    configure(stores, URL, cluster)
    analysts = AnalystSql(stores, URL, "", Limits())
    try:
        assert analysts._access is not None
        return analysts._access.statements("acme")
    finally:
        analysts.close()


async def parsed(stores: Stores, statement: str) -> str:
    """The statement as the engine's parser reads it back (one line), or the parser's error."""
    found = await asyncio.to_thread(  # in hex: the text goes in as a value, never as a query
        stores.clickhouse.query,
        "SELECT formatQuerySingleLine(unhex(%(q)s))",
        parameters={"q": statement.encode().hex()},
    )
    return found.result_rows[0][0]


def digest(statements: list[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()


async def test_with_no_cluster_named_the_statements_are_the_one_node_ones_byte_for_byte(monkeypatch):
    monkeypatch.delenv("PRISM_CLICKHOUSE_CLUSTER", raising=False)
    assert Settings(clickhouse_url=URL).clickhouse_cluster == ""
    flows = await rendered("")
    assert {flow: digest(statements) for flow, statements in flows.items()} == ONE_NODE_DIGESTS
    everything = " ".join(statement for statements in flows.values() for statement in statements)
    assert not re.search(r"ON CLUSTER|Replicated|Distributed|_local\b|distributed_foreground_insert", everything)


async def test_on_a_cluster_every_statement_parses_and_runs_on_every_node_or_through_the_distributed_tables(stores):
    flows = await rendered(CLUSTER)
    distributed = _distributed_tables(flows["setup"])
    for flow, statements in flows.items():
        assert statements, flow
        for statement in statements:
            formatted = await parsed(stores, statement)
            if formatted.startswith("INSERT"):  # into the Distributed table, waiting for its shards
                assert formatted.split()[2] in distributed, formatted
                assert all(setting in formatted for setting in WRITE_SETTINGS), formatted
                assert "ON CLUSTER" not in formatted
            else:  # DDL, DELETE, users, grants and row policies: on every node
                assert re.match(r"(CREATE|ALTER|DROP|EXCHANGE|DELETE|GRANT|REVOKE)\b", formatted), formatted
                assert f" ON CLUSTER {CLUSTER}" in formatted, formatted


async def test_on_a_cluster_each_table_is_replicated_behind_a_distributed_table_sharded_by_tenant(stores):
    one_node = [s for s in (await rendered(""))["setup"] if s.startswith("CREATE TABLE")]
    cluster = [s for s in (await rendered(CLUSTER))["setup"] if s.startswith("CREATE TABLE")]
    assert len(one_node) == 8 and len(cluster) == 2 * len(one_node)  # seven of the version's tables, checkpoints
    for single, local, front in zip(one_node, cluster[::2], cluster[1::2], strict=True):
        single, local, front = [await parsed(stores, s) for s in (single, local, front)]
        table = single.split()[5]
        database, name = table.split(".")
        engine = re.search(r"ENGINE = (\w+)(?:\(([^()]*)\))?", single)
        assert engine
        arguments = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" + (
            f", {engine[2]}" if engine[2] else ""
        )
        replicated = f"ENGINE = Replicated{engine[1]}({arguments})"
        # the one-node table, on every node under the local name, its engine replicated with the same version column
        assert local == single.replace(f"{table} (", f"{table}_local ON CLUSTER {CLUSTER} (").replace(
            engine[0], replicated
        )
        key = "cityHash64(name)" if name == "checkpoints" else "cityHash64(tenant_id)"
        assert key == "cityHash64(name)" or "ORDER BY (tenant_id," in single  # a tenant's rows sort, and shard, first
        assert front == (
            f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {CLUSTER} AS {table}_local "
            f"ENGINE = Distributed({CLUSTER}, {database}, {name}_local, {key})"
        )


async def test_on_a_cluster_the_served_views_read_the_distributed_tables_and_deletes_reach_every_replica(stores):
    flows = await rendered(CLUSTER)
    distributed = _distributed_tables(flows["setup"])
    views = [s for flow in flows.values() for s in flow if re.match(r"CREATE (OR REPLACE )?VIEW", s)]
    assert len(views) > len(distributed)
    for view in views:
        formatted = await parsed(stores, view)
        assert "_local" not in formatted, formatted
        read = set(re.findall(r"FROM (prism\.\w+)", formatted))
        assert read and read <= distributed | {"prism.daily_orders_v1"}, formatted  # the version's own view
    deletes = [s for flow in flows.values() for s in flow if s.startswith("DELETE")]
    assert {s.split()[2] for s in deletes} == {
        f"prism.{table}_local" for table in ("orders_v1", "order_lines_v1", "order_events_v1", "checkpoints")
    }


async def test_on_a_cluster_the_analysts_users_grants_and_row_policies_are_made_on_every_node(stores):
    statements = [await parsed(stores, s) for s in _analysts_statements(CLUSTER)]
    assert all(f" ON CLUSTER {CLUSTER}" in s for s in statements), statements
    assert sum(s.startswith(f"GRANT ON CLUSTER {CLUSTER} SELECT ON prism.") for s in statements) == len(TABLES)
    assert sum(s.startswith("CREATE ROW POLICY OR REPLACE prism_analyst_rows ON") for s in statements) == len(TABLES)
    assert statements[0].startswith(f"CREATE USER IF NOT EXISTS prism_analyst_acme ON CLUSTER {CLUSTER} ")


def test_a_cluster_without_a_server_or_not_a_plain_name_is_refused_at_set_up(monkeypatch):
    monkeypatch.setenv("PRISM_CLICKHOUSE_CLUSTER", CLUSTER)
    settings = Settings(clickhouse_url="")  # the embedded engine
    assert settings.clickhouse_cluster == CLUSTER
    with pytest.raises(ClusterMisconfigured, match="PRISM_CLICKHOUSE_URL"):
        configure(Stores(namespace="prism"), settings.clickhouse_url, settings.clickhouse_cluster)
    with pytest.raises(ClusterMisconfigured, match="not a cluster name"):
        configure(Stores(namespace="prism"), URL, "analytics; DROP DATABASE prism")


def _distributed_tables(setup: list[str]) -> set[str]:
    """The tables set-up makes with the Distributed engine."""
    return {s.split()[5] for s in setup if "ENGINE = Distributed(" in s}
