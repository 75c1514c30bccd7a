"""The quick start's main job, as a new user runs it: ``prism demo`` from a checkout with no ``var/`` folder yet."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from infra import sandbox
from write.migrate import upgrade


@pytest.fixture
async def demo_settings(fresh_services, stores, tmp_path):
    """Databases and a namespace of the demo's own (it registers tenants that no other test expects), and a chDB
    folder whose parent does not exist yet, as in a fresh clone."""
    settings = fresh_services.model_copy(
        update={
            "namespace": f"{fresh_services.namespace}demo",
            "write_database_url": fresh_services.write_database_url + "_demo",
            "dashboards_database_url": fresh_services.dashboards_database_url + "_demo",
            "chdb_path": tmp_path / "var" / "chdb",
            "api_port": sandbox.free_port(),
        }
    )
    await _forget(stores, settings.broker_url, settings.namespace)
    for url in (settings.write_database_url, settings.dashboards_database_url):
        await sandbox.recreate_database(url)
    await asyncio.to_thread(upgrade, settings.write_database_url)
    yield settings
    for url in (settings.write_database_url, settings.dashboards_database_url):
        await sandbox.drop_database(url)
    await _forget(stores, settings.broker_url, settings.namespace)


async def _forget(stores, broker_url: str, namespace: str) -> None:
    """What an earlier run left of this namespace in the shared Redis databases and Elasticsearch."""
    await stores.elasticsearch.indices.delete(
        index=f"{namespace}*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
    )
    broker = Redis.from_url(broker_url)
    try:
        for client in (stores.redis, broker):
            keys = [key async for key in client.scan_iter(match=f"{namespace}*")]
            if keys:
                await client.delete(*keys)
    finally:
        await broker.aclose()


@pytest.mark.timeout(600)
async def test_the_demo_reads_back_from_every_reader_and_every_store_agrees(demo_settings):
    demo = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "infra.cli", "demo", "--orders", "30"],
        env=demo_settings.child_environment(),
        capture_output=True,
        text=True,
        timeout=540,
        cwd=Path(__file__).parents[2],
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-4000:]
    assert "demo finished: every store agrees with the write model" in demo.stdout, out[-4000:]
    answered = [line for line in demo.stdout.splitlines() if line.startswith("== ")]
    assert len(answered) == 6 and all("-> 200" in line for line in answered), answered  # every reader it shows
    assert (demo_settings.chdb_path.parent / "demo-serve.log").exists()
    assert _processes_of(demo_settings.namespace) == []  # serve and every child it started are gone


def _processes_of(namespace: str) -> list[int]:
    """Processes whose environment names this namespace (a ``prism serve`` of these settings, or a child of it)."""
    marker = f"PRISM_NAMESPACE={namespace}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
