"""Typed settings for every Prism process, read from ``PRISM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Credentials that only the local development services use.
_DEV_PASSWORD = "prism"


class Settings(BaseSettings):
    """One settings object per process; defaults match ``prism services up``."""

    model_config = SettingsConfigDict(env_prefix="PRISM_", env_file=".env", extra="ignore")

    env: str = Field("development", description="development | test | production")
    namespace: str = Field("prism", pattern=r"^[a-z][a-z0-9_]{0,39}$",
                           description="Prefix of Redis keys, Elasticsearch indexes, the ClickHouse database, "
                                       "the dashboards schema and the queues")

    write_database_url: str = Field("postgresql+asyncpg://prism:prism@127.0.0.1:55432/prism_write",
                                    description="Write model and event log (Postgres)")
    dashboards_database_url: str = Field("postgresql+asyncpg://prism:prism@127.0.0.1:55432/prism_dashboards",
                                         description="Customer dashboards read model (Postgres)")
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="Redis holding the order summaries")
    broker_url: str = Field("redis://127.0.0.1:56379/1", description="Redis used by Dramatiq")
    elasticsearch_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch holding the order search")
    clickhouse_url: str = Field("", description="ClickHouse server URL; empty runs the embedded chDB engine")
    chdb_path: Path = Field(Path("var/chdb"), description="Data folder of the embedded chDB engine")

    services_dir: Path = Field(Path("/var/lib/prism"), description="Data, logs and pids of the local services")
    elasticsearch_heap: str = Field("512m", description="Heap of the local Elasticsearch (at most 1g)")

    api_host: str = Field("127.0.0.1", description="Address the HTTP API listens on")
    api_port: int = Field(8000, description="Port of the HTTP API")

    batch_size: int = Field(2000, ge=1, description="Events a projection applies per batch")
    read_wait_seconds: float = Field(2.0, ge=0, description="Longest a reader waits for min_position")
    relay_poll_seconds: float = Field(1.0, gt=0, description="Relay's periodic tick when no notification arrives")
    serve_relay: bool = Field(True, description="Whether `prism serve` runs the relay itself (false when a separate "
                                                "`prism relay` process runs)")
    worker_threads: int = Field(1, ge=1, description="Dramatiq worker threads per worker process (catch-ups in flight)")
    retry_min_backoff_ms: int = Field(200, ge=1, description="First retry delay of a failed catch-up")
    retry_max_backoff_ms: int = Field(30_000, ge=1, description="Longest retry delay of a failed catch-up")
    max_retries: int = Field(10, ge=0, description="Retries of a failed catch-up before Dramatiq dead-letters it")
    poison_after: int = Field(3, ge=1, description="Failed attempts after which an event is parked as poison")
    poison_policies: dict[str, Literal["halt", "skip"]] = Field(
        default_factory=dict, description='Per projection: "halt" (default) or "skip" at a poison event, as JSON')

    sql_max_seconds: float = Field(10.0, gt=0, description="Longest an analyst's ad-hoc SQL query may run")
    sql_max_rows: int = Field(10_000, ge=1, description="Most rows an analyst's ad-hoc SQL query may return")
    sql_max_memory_mb: int = Field(512, ge=16, description="Most memory an analyst's ad-hoc SQL query may use")

    operator_token: str = Field("", description="Bearer token the audit and dead-letter routes require (empty: "
                                                "open, refused in production)")

    @model_validator(mode="after")
    def _refuse_dev_credentials_in_production(self) -> "Settings":
        if self.env == "production" and not self.operator_token:
            raise ValueError("PRISM_OPERATOR_TOKEN must be set with PRISM_ENV=production")
        if self.env == "production":
            for url in (self.write_database_url, self.dashboards_database_url):
                if f":{_DEV_PASSWORD}@" in url:
                    raise ValueError("refusing the development database password with PRISM_ENV=production")
        return self

    @property
    def uses_chdb(self) -> bool:
        return not self.clickhouse_url
