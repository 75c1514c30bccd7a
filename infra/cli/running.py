"""Asking a running Prism (it holds the embedded engine, which allows one process, so commands that read every
store go through it), and the plain tables the commands print."""

from __future__ import annotations

import asyncio
import contextlib

from infra.settings import Settings


def ask_running(settings: Settings, method: str, path: str, **kwargs):
    """An operator's request to a Prism answering on the configured address; None when none answers.

    A running ``serve`` holds the embedded engine (chDB allows one process), so commands that read
    every store ask it instead of opening the stores themselves.
    """
    import httpx

    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        httpx.get(f"{base}/health", timeout=2)
    except httpx.HTTPError:
        return None
    with local_key(settings, None, ["operator"]) as headers:
        return httpx.request(method, f"{base}{path}", headers=headers, timeout=600, **kwargs)


def running_status(settings: Settings) -> list[dict] | None:
    """The status rows of a Prism process answering on the configured address, if one does."""
    response = ask_running(settings, "GET", "/projections")
    return response.json() if response is not None and response.status_code == 200 else None


@contextlib.contextmanager
def local_key(settings: Settings, tenant: str | None, scopes: list[str]):
    """Headers with a key issued for one command and revoked after it: who can reach the write database may."""
    from datetime import timedelta

    from infra import bootstrap
    from write import api_keys

    async def issue() -> tuple[str, str]:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            key, plain = await api_keys.issue(engine, tenant, scopes, "prism cli", timedelta(minutes=10))
        finally:
            await engine.dispose()
        return key.id, plain

    async def revoke(key_id: str) -> None:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            await api_keys.revoke(engine, key_id)
        finally:
            await engine.dispose()

    key_id, plain = asyncio.run(issue())
    try:
        yield {"Authorization": f"Bearer {plain}"}
    finally:
        asyncio.run(revoke(key_id))


def table(columns: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], f"({len(rows)} rows)"])
