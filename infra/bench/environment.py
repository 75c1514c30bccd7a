"""Where a benchmark runs: a sandbox of its own beside the demo's data, on the same local services."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from infra import sandbox
from infra.settings import Settings

NAMESPACE = "prismbench"


def bench_settings(base: Settings, folder: Path) -> Settings:
    """The base settings moved to bench databases, Redis databases 4 and 5, and a chDB folder of its own."""
    return base.model_copy(
        update={
            "env": "development",
            "namespace": NAMESPACE,
            "write_database_url": sandbox.sibling(base.write_database_url, "prism_bench_write"),
            "dashboards_database_url": sandbox.sibling(base.dashboards_database_url, "prism_bench_dashboards"),
            "redis_url": sandbox.sibling(base.redis_url, "4"),
            "broker_url": sandbox.sibling(base.broker_url, "5"),
            "chdb_path": folder / "chdb",
            "api_port": sandbox.free_port(),
            "operator_token": secrets.token_hex(8),
        }
    )


def bench_databases(settings: Settings) -> list[str]:
    """The bench's Postgres databases, whose backends its CPU figures count."""
    return [make_url(url).database or "" for url in (settings.write_database_url, settings.dashboards_database_url)]
