"""How a ClickHouse statement looks on a cluster of servers (``PRISM_CLICKHOUSE_CLUSTER``), and on one node.

On one node (no cluster named: the embedded engine, or one server) every statement is
the one-node form, unchanged. On a cluster:

- every DDL statement (CREATE, ALTER, DROP, EXCHANGE, a ``DELETE``, and the analysts'
  users, grants and row policies) runs ``ON CLUSTER``: readers and analysts may reach
  any node, so each node has the database, the tables, the views and the users;
- each MergeTree-family table becomes a pair: ``<table>_local`` on every node, the
  Replicated form of its engine (same version argument), and ``<table>`` itself, a
  ``Distributed`` table over those, under the name the views, readers and inserts use
  on one node. Rows are sharded by tenant (``BY_TENANT``);
- the projection's inserts go to the Distributed tables, and wait there for their
  shards (``write_settings``).

Nothing here has run against a live cluster: the engine's parser checks these statements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from projections.stores.clients import Stores
from write.errors import PrismError

#: Where a row goes: to its tenant's shard, so that all of a tenant's rows are on one shard. FINAL on a Distributed
#: table collapses each shard's rows on their own, so an order's versions must share a shard (every sort key starts
#: with the tenant); the rollups recompute a tenant's hours and product days from its facts, which that shard holds,
#: and their rows land beside them. The hash spreads tenants over the shards (a sharding key is a number).
BY_TENANT = "cityHash64(tenant_id)"
#: The checkpoints' rows carry no tenant: a checkpoint's rows stay together, on the shard of its name.
BY_NAME = "cityHash64(name)"

#: Where a replicated table keeps its replication log in ZooKeeper (Keeper): one path per shard and table; each
#: server's configuration defines the ``{shard}`` and ``{replica}`` macros.
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"

#: What the projection's inserts run with on a cluster.
#:
#: - ``distributed_foreground_insert``: an insert into a Distributed table returns once every shard has its rows.
#:   By default it returns when the rows are queued on the node that took them, and the rollup recompute and the
#:   checkpoint that follow a batch's facts would then run ahead of them (a checkpoint past facts not yet there, a
#:   rollup recomputed without them, kept until its hour is touched again).
#: - ``load_balancing``, ``prefer_localhost_replica``: the inserts and the recompute that reads them right after pick
#:   the same replica of each shard (the first live one in the cluster's order), whichever node the client reaches:
#:   another replica may not have fetched the new rows yet.
#:
#: Inserts go to the Distributed tables, never to a node's local tables: a local insert would put a tenant's rows on
#: the shard of whichever node the projection reached, and a tenant would end up on several shards.
WRITE_SETTINGS = ("distributed_foreground_insert = 1", "load_balancing = 'in_order'", "prefer_localhost_replica = 0")

#: A cluster's name as the statements name it (as an identifier: no quoting to get wrong).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The one-node table statements ``Cluster.table`` takes: ``CREATE TABLE IF NOT EXISTS <db.table> ...``, one
#: MergeTree-family engine with its arguments, if any.
_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (?P<table>(?P<database>\w+)\.(?P<name>\w+)) ")
_ENGINE = re.compile(r"ENGINE = (?P<engine>\w*MergeTree)(?:\((?P<arguments>[^()]*)\))?")
#: The key in ``Stores.extra`` that holds the cluster (``configure``).
_KEY = "clickhouse_cluster"


class ClusterMisconfigured(PrismError):
    """Raised at set-up when ``PRISM_CLICKHOUSE_CLUSTER`` cannot be used: it names a cluster without a ClickHouse
    server (``PRISM_CLICKHOUSE_URL``; the embedded engine is one node), or is not a plain name."""

    code = "misconfigured"


@dataclass(frozen=True)
class Cluster:
    """The servers ClickHouse statements run on: one node (no name), or every node of the cluster ``name``."""

    name: str = ""

    @classmethod
    def named(cls, name: str, clickhouse_url: str) -> Cluster:
        """The cluster ``PRISM_CLICKHOUSE_CLUSTER`` names, refused without a server to run it on."""
        if name and not clickhouse_url:
            raise ClusterMisconfigured(
                f"PRISM_CLICKHOUSE_CLUSTER={name} needs a ClickHouse server: set PRISM_CLICKHOUSE_URL to a node of "
                "the cluster, or leave PRISM_CLICKHOUSE_CLUSTER empty (the embedded chDB engine is one node)"
            )
        if name and not _NAME.fullmatch(name):
            raise ClusterMisconfigured(
                f"PRISM_CLICKHOUSE_CLUSTER={name!r} is not a cluster name ClickHouse takes unquoted "
                "(letters, digits and underscores, not starting with a digit)"
            )
        return cls(name)

    @property
    def on(self) -> str:
        """The ``ON CLUSTER`` clause, with its leading space; "" on one node. Each statement has its own place for
        it: after the object's name (CREATE, ALTER, DROP, EXCHANGE, DELETE, users, row policies), after the verb
        (GRANT, REVOKE)."""
        return f" ON CLUSTER {self.name}" if self.name else ""

    def local(self, table: str) -> str:
        """The name of the replicated table on each node behind the Distributed ``table`` (``db.name``)."""
        return f"{table}_local" if self.name else table

    def table(self, statement: str, sharding_key: str = BY_TENANT) -> list[str]:
        """A MergeTree-family table's one-node ``CREATE TABLE IF NOT EXISTS``: itself on one node; on a cluster,
        the table on each node in the Replicated form of its engine, then the Distributed table in front of it."""
        if not self.name:
            return [statement]
        created, engine = _CREATE.match(statement), _ENGINE.search(statement)
        if created is None or engine is None:
            raise ValueError(f"not a one-node CREATE TABLE of a MergeTree engine: {statement[:120]}")
        table, database, name = created["table"], created["database"], created["name"]
        local = self.local(table)
        arguments = REPLICA_PATH + (f", {engine['arguments']}" if engine["arguments"] else "")
        replicated = (
            statement[: created.start("table")]
            + f"{local}{self.on} "
            + statement[created.end() : engine.start()]
            + f"ENGINE = Replicated{engine['engine']}({arguments})"
            + statement[engine.end() :]
        )
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {table}{self.on} AS {local} "
            f"ENGINE = Distributed({self.name}, {database}, {name}_local, {sharding_key})"
        )
        return [replicated, distributed]

    def drop_table(self, table: str) -> list[str]:
        """``DROP TABLE IF EXISTS`` of a table or a view; on a cluster, of a Distributed table and the replicated one
        behind it (none behind a view: IF EXISTS). ``SYNC``: the replication path, which names the table, is freed at
        once rather than minutes later, so a table of the same name can be made again."""
        if not self.name:
            return [f"DROP TABLE IF EXISTS {table}"]
        return [f"DROP TABLE IF EXISTS {table}{self.on}", f"DROP TABLE IF EXISTS {self.local(table)}{self.on} SYNC"]

    def delete_from(self, table: str) -> str:
        """The head of a ``DELETE`` of rows of ``table``: a Distributed table takes no DELETE, so on a cluster the
        replicated tables behind it, on every node."""
        return f"DELETE FROM {self.local(table)}{self.on}"

    @property
    def write_settings(self) -> tuple[str, ...]:
        """The settings the projection's inserts add (``WRITE_SETTINGS``); none on one node."""
        return WRITE_SETTINGS if self.name else ()

    @property
    def insert_settings(self) -> str:
        """``write_settings`` as the ``SETTINGS`` clause of an ``INSERT ... SELECT``, after its columns; "" on one
        node. The clause applies to the whole statement: the SELECT reads with it too."""
        return f" SETTINGS {', '.join(WRITE_SETTINGS)}" if self.name else ""


#: One node: every statement as it is.
ONE_NODE = Cluster()


def configure(stores: Stores, clickhouse_url: str, cluster: str) -> None:
    """Records the cluster of ``PRISM_CLICKHOUSE_CLUSTER`` with the stores, where the analytics projection and the
    analysts' access find it (``cluster_of``): the composition root calls it once the stores are open. Raises
    ``ClusterMisconfigured`` for a cluster without a server."""
    stores.extra[_KEY] = Cluster.named(cluster, clickhouse_url)


def cluster_of(stores: Stores) -> Cluster:
    """The cluster ClickHouse statements run on (``ONE_NODE`` unless ``configure`` named one)."""
    return cast(Cluster, stores.extra.get(_KEY, ONE_NODE))
