"""One way to reach ClickHouse: a server over HTTP, or the embedded chDB engine on a local path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect


def connect(url: str, chdb_path: Path | str, settings: dict[str, Any] | None = None) -> Any:
    """A clickhouse-connect client; chDB when ``url`` is empty (one data path per process)."""
    if url:
        return clickhouse_connect.get_client(dsn=url, settings=settings or {})
    Path(chdb_path).mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), settings=settings or {})
