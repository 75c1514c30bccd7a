"""Checkpoint reads on the embedded ClickHouse are remembered between two writes: this process makes every write
the engine sees, so a poll of positions (or a read waiting for its ``min_position``) runs no query while nothing
changed, and the first read after a write sees it."""

from __future__ import annotations

import asyncio

import pytest

from projections.layouts.order_analytics import Tables, read_checkpoint
from projections.order_analytics import Block, insert_block
from projections.stores.embedded_writes import EMBEDDED_WRITES
from tests.conftest import NAMESPACE


async def _checkpoint_table(client, namespace: str = f"{NAMESPACE}_remembered") -> Tables:
    tables = Tables(namespace)
    await asyncio.to_thread(client.command, f"CREATE DATABASE IF NOT EXISTS {tables.database}")
    await asyncio.to_thread(client.command, f"DROP TABLE IF EXISTS {tables.checkpoints}")
    await asyncio.to_thread(client.command, tables.ddl()[-1])
    return tables


def _write(client, tables: Tables, position: int) -> None:
    insert_block(client, tables.checkpoints, Block(("name", "position"), [(tables.checkpoint_key, position)]))


@pytest.mark.parametrize("remembering", [True, False])
async def test_a_checkpoint_is_queried_once_between_two_writes(stores, monkeypatch, remembering):
    client = stores.clickhouse
    tables = await _checkpoint_table(client)
    await asyncio.to_thread(_write, client, tables, 5)
    queries: list[str] = []
    engine_query = client._client.query

    def counted(statement, *args, **kwargs):
        queries.append(statement)
        return engine_query(statement, *args, **kwargs)

    monkeypatch.setattr(client._client, "query", counted)
    monkeypatch.setattr(EMBEDDED_WRITES, "opened", remembering)  # False: as with a server, which has other writers

    assert [await read_checkpoint(client, tables) for _ in range(3)] == [5, 5, 5]
    assert len(queries) == (1 if remembering else 3)
    await asyncio.to_thread(_write, client, tables, 9)
    assert await read_checkpoint(client, tables) == 9, "a read after a write answered what was remembered before it"
    assert len(queries) == (2 if remembering else 4)


async def test_a_checkpoint_remembered_in_one_namespace_is_not_another_s(stores):
    """Versions of the same number in two namespaces share a checkpoint name, not a checkpoint."""
    client = stores.clickhouse
    first = await _checkpoint_table(client, f"{NAMESPACE}_first")
    second = await _checkpoint_table(client, f"{NAMESPACE}_second")
    await asyncio.to_thread(_write, client, first, 7)
    assert await read_checkpoint(client, first) == 7
    assert first.checkpoint_key == second.checkpoint_key
    assert await read_checkpoint(client, second) == 0
