"""Typed settings for every Prism process, read from ``PRISM_*`` environment variables."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from write.partitions import BUCKETS

#: Credentials that only the local development services use.
_DEV_PASSWORD = "prism"
#: A file in ``services_dir`` that ``prism services up --cluster`` leaves while the local clusters run, so later
#: commands use them unless ``PRISM_STORES`` says otherwise.
CLUSTER_MARK = "run/stores-cluster"
#: Where ``prism services up --cluster`` runs each store's nodes on this machine.
REDIS_CLUSTER_PORTS = tuple(range(46001, 46007))  # three masters, then a replica each; a bus port 10000 above each
ELASTICSEARCH_NODE_PORTS = (9201, 9202, 9203)
POSTGRES_REPLICA_PORT = 55433


def local_clusters() -> dict[str, object]:
    """The store settings of the clusters ``prism services up --cluster`` runs (the dashboards' replica apart: see
    ``Settings.dashboards_reads_at``)."""
    return {
        "redis_cluster_nodes": ",".join(f"127.0.0.1:{port}" for port in REDIS_CLUSTER_PORTS),
        "elasticsearch_url": ",".join(f"http://127.0.0.1:{port}" for port in ELASTICSEARCH_NODE_PORTS),
        "elasticsearch_replicas": 1,
    }


class Settings(BaseSettings):
    """One settings object per process; defaults match ``prism services up``."""

    model_config = SettingsConfigDict(env_prefix="PRISM_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = Field(
        "development", description="development | test | production; anything else refuses to start"
    )
    namespace: str = Field(
        "prism",
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Prefix of Redis keys, Elasticsearch indexes, the ClickHouse database, "
        "the dashboards schema and the queues",
    )

    stores: Literal["single", "cluster"] = Field(
        "single",
        description="single: one node per store; cluster: the stores' addresses not set otherwise are those of the "
        "clusters `prism services up --cluster` runs here (a Redis Cluster, three Elasticsearch nodes, a Postgres "
        "replica for dashboards reads); that command makes it the default until `prism services down`. Development "
        "only; derived when the settings are made (a copy with another form names every store setting it changes)",
    )
    write_database_url: str = Field(
        "postgresql+asyncpg://prism:prism@127.0.0.1:55432/prism_write",
        description="Write model and event log (Postgres)",
    )
    dashboards_database_url: str = Field(
        "postgresql+asyncpg://prism:prism@127.0.0.1:55432/prism_dashboards",
        description="Customer dashboards read model (Postgres)",
    )
    dashboards_read_url: str = Field(
        "",
        description="A streaming replica of the dashboards database that its readers read (empty: the primary); "
        "read-your-writes stays exact, the replica's checkpoint row coming in the same WAL as its data",
    )
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="Redis holding the order summaries")
    redis_cluster_nodes: str = Field(
        "",
        pattern=r"^$|^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$",
        description="Nodes of a Redis Cluster holding the order summaries instead (host:port,host:port; any of "
        "them finds the rest)",
    )
    broker_url: str = Field("redis://127.0.0.1:56379/1", description="Redis used by Dramatiq")
    elasticsearch_url: str = Field(
        "http://127.0.0.1:9200",
        description="Elasticsearch holding the order search: one node's URL, or several, comma-separated",
    )
    elasticsearch_shards: int = Field(1, ge=1, le=64, description="Primary shards of each order search index")
    elasticsearch_replicas: int = Field(
        0, ge=0, le=8, description="Replicas of each shard (1 or more keeps reads answering when a node is lost)"
    )
    clickhouse_url: str = Field("", description="ClickHouse server URL; empty runs the embedded chDB engine")
    clickhouse_cluster: str = Field(
        "",
        description="ClickHouse cluster (as the servers' configuration names it) the analytics DDL, users and grants "
        "run on (ON CLUSTER), each table replicated behind a Distributed table sharded by tenant; needs "
        "PRISM_CLICKHOUSE_URL (a node of it). Empty: one node",
    )
    chdb_path: Path = Field(Path("var/chdb"), description="Data folder of the embedded chDB engine")
    clickhouse_read_connections: int = Field(
        4,
        ge=1,
        description="ClickHouse clients kept for the analytics readers' canned queries, apart from the projection's",
    )

    services_dir: Path = Field(Path("/var/lib/prism"), description="Data, logs and pids of the local services")
    elasticsearch_heap: str = Field("512m", description="Heap of the local Elasticsearch (at most 1g)")

    api_host: str = Field("127.0.0.1", description="Address the HTTP API listens on")
    api_port: int = Field(8000, description="Port of the HTTP API")
    api_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="API processes `prism serve` runs on the one port (default: one per core)",
    )
    clickhouse_owner_socket: str = Field(
        "",
        description="Set by `prism serve` for its API processes: the Unix socket of the process that owns the "
        "embedded ClickHouse engine, to which routes that need it are forwarded",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body the HTTP API reads (413 past it)"
    )

    batch_size: int = Field(2000, ge=1, description="Events a projection applies per batch")
    rebuild_batch_size: int = Field(
        10_000,
        ge=1,
        description="Events per batch while a version is built beside the "
        "live one: larger blocks for the stores, at the cost "
        "of the live version of that projection waiting up "
        "to one such batch",
    )
    read_wait_seconds: float = Field(2.0, ge=0, description="Longest a reader waits for min_position")
    store_timeout_seconds: float = Field(
        3.0,
        gt=0,
        description="Deadline of every read-store call a reader makes (and of connecting to any store, and of "
        "/ready's pings): a store that is down or does not answer within it is answered 503 with Retry-After. Client "
        "retries never repeat a timed-out call, so a hung store costs a reader about one deadline (two for Postgres: "
        "the pool's ping of a kept connection, then a new connection)",
    )
    store_work_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Deadline of the calls that legitimately take longer: a worker's batch writes, a rebuild's bulk "
        "and refresh, and any one statement on the write database (a hung write database is answered 503 after it)",
    )
    pool_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest a request waits for a write-database connection before it is answered 503"
    )
    database_pool_size: int = Field(
        40,
        ge=1,
        description="Postgres connections a serving process keeps per database "
        "(write model, dashboards), opened once and kept; past "
        "them, requests wait for one",
    )
    relay_poll_seconds: float = Field(1.0, gt=0, description="Relay's periodic tick when no notification arrives")
    serve_relay: bool = Field(
        True,
        description="Whether `prism serve` runs the relay itself (false when a separate `prism relay` process runs)",
    )
    worker_threads: int = Field(1, ge=1, description="Dramatiq worker threads per worker process (catch-ups in flight)")
    host_name: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="This host's name in every process's identity (its database sessions, status, metrics, logs); "
        "the machine's host name by default",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="How every process writes its log to stderr: text, a plain line per record; json, one object "
        "per line for a log pipeline (time, level, logger, message, host, the process's role, and where known the "
        "projection, partition, position, tenant, correlation_id and exc_info)",
    )
    partitions: int = Field(
        1,
        ge=1,
        le=BUCKETS,
        description="How many partitions of the tenants each projection's work splits into, each with its own "
        "checkpoint and lock, taken by any worker on any host (a tenant's events stay in one). A projection takes "
        "it at its first start and at each rebuild; the count a version was made with is recorded and kept: "
        "rebuild a projection to change it",
    )
    worker_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="Niceness of projection worker processes: under a full "
        "machine the API is served first, and the projections take "
        "larger batches, at a lower cost per event",
    )
    builder_nice: int = Field(
        15,
        ge=0,
        le=19,
        description="Niceness of the processes `prism serve` runs for "
        "rebuilds: a rebuild takes what the live versions leave",
    )
    builder_linger_seconds: float = Field(
        30.0,
        gt=0,
        description="How long `prism serve` keeps a store's builder process once "
        "none of its projections has a rebuild or drop left, in case another follows",
    )
    freshness_ms: dict[str, Annotated[int, Field(ge=0, le=60_000)]] = Field(
        default_factory=dict,
        description="Per projection, its freshness budget in ms, as JSON (e.g. "
        '{"order_analytics": 2000}): how long its worker may gather commits to write them '
        "as one batch (fewer, larger writes: less CPU per order, older reads). Default: each "
        "projection's own (order summaries and the dashboards 0, as each commit comes; search "
        "500, its index's refresh interval; analytics 1000). A reader asking for its own write "
        "(min_position) never waits out a budget: the projection writes at once",
    )
    worker_poll_ms: int = Field(
        100,
        ge=1,
        description="Longest an idle worker waits between two looks at its queue "
        "(Dramatiq's worker_timeout; its default, 1 s, is latency; "
        "each look costs a Redis script call)",
    )
    retry_min_backoff_ms: int = Field(200, ge=1, description="First retry delay of a failed catch-up")
    retry_max_backoff_ms: int = Field(30_000, ge=1, description="Longest retry delay of a failed catch-up")
    max_retries: int = Field(10, ge=0, description="Retries of a failed catch-up before Dramatiq dead-letters it")
    poison_after: int = Field(3, ge=1, description="Failed attempts after which an event is parked as poison")
    poison_policies: dict[str, Literal["halt", "skip"]] = Field(
        default_factory=dict, description='Per projection: "halt" (default) or "skip" at a poison event, as JSON'
    )

    sql_max_seconds: float = Field(10.0, gt=0, description="Longest an analyst's ad-hoc SQL query may run")
    sql_max_rows: int = Field(10_000, ge=1, description="Most rows an analyst's ad-hoc SQL query may return")
    sql_max_memory_mb: int = Field(512, ge=16, description="Most memory an analyst's ad-hoc SQL query may use")
    sql_max_bytes: int = Field(10_000_000, ge=1024, description="Most bytes an analyst's ad-hoc SQL result may hold")
    sql_max_concurrent: int = Field(2, ge=1, description="Analyst queries one tenant may have in flight")
    sql_max_concurrent_total: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2),
        ge=1,
        description="Analyst queries all tenants together may have in flight (the analysts' own thread pool); "
        "by default half the cores: even at the lowest priority, CPU-bound analyst queries on every "
        "core doubled the canned analytics' p99",
    )
    sql_queue_seconds: float = Field(1.0, ge=0, description="Longest an analyst query waits for a turn before a 429")
    sql_max_threads: int = Field(1, ge=1, description="Threads one analyst query may use")

    operator_token: str = Field(
        "",
        description="Deprecated: a bearer token that acts as an operator key (use "
        "`prism keys create --scopes operator`); empty: none",
    )
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified API key is remembered (a revocation takes effect within it)"
    )
    open_routes: list[str] = Field(
        ["/health", "/ready", "/metrics"],
        description="Operations routes answered without a credential, as JSON; the "
        "others of /health, /ready, /metrics need an operator credential",
    )
    console_sample_seconds: float = Field(
        5.0, gt=0, description="How often the console's history samples each projection's lag and the stores' health"
    )
    console_history_seconds: float = Field(3600.0, gt=0, description="How far back the console's history goes")
    console_session_hours: float = Field(
        8.0, gt=0, description="How long a console sign-in lasts (never past the credential it was made with)"
    )
    console_secure_cookie: bool = Field(
        False,
        description="Mark the console's cookie Secure even when the request here is plain HTTP (TLS ends at a "
        "proxy); over HTTPS it always is",
    )
    console_origins: list[str] = Field(
        [],
        description="Origins the console is served on besides the request's own host, as JSON (a proxy that "
        'rewrites Host: ["https://ops.example.com"])',
    )
    jwt_issuer: str = Field("", description="Expected `iss` of JWTs from an identity provider")
    jwt_audience: str = Field("", description="Expected `aud` of JWTs")
    jwt_jwks_url: str = Field("", description="JWKS URL of the identity provider's signing keys")
    jwt_public_key: str = Field("", description="PEM public key that signs JWTs (instead of a JWKS URL)")
    jwt_algorithms: list[str] = Field(["RS256", "ES256"], description="Signature algorithms accepted, as JSON")
    jwt_tenant_claim: str = Field("tenant", description="JWT claim that holds the caller's tenant")

    @model_validator(mode="after")
    def _local_clusters(self) -> Settings:
        """With ``stores=cluster`` (or the local clusters running), each store address left unset is its cluster's."""
        marked = (self.services_dir / CLUSTER_MARK).exists()
        if "stores" not in self.model_fields_set and self.env == "development" and marked:
            self.stores = "cluster"
        if self.stores != "cluster":
            return self
        for field, value in local_clusters().items():
            if field not in self.model_fields_set:
                setattr(self, field, value)
        return self

    @property
    def dashboards_reads_at(self) -> str:
        """Where the dashboards' readers read: ``dashboards_read_url``, or with the local clusters their replica of
        the dashboards database (derived when asked, so a copy of these settings with another database follows),
        or empty for the primary."""
        if self.dashboards_read_url or self.stores != "cluster":
            return self.dashboards_read_url
        primary = urlsplit(self.dashboards_database_url)
        login = primary.netloc.rpartition("@")[0]
        replica = primary._replace(
            netloc=f"{login}@127.0.0.1:{POSTGRES_REPLICA_PORT}" if login else f"127.0.0.1:{POSTGRES_REPLICA_PORT}"
        )
        return replica.geturl()

    @model_validator(mode="after")
    def _refuse_unsafe_values_outside_development(self) -> Settings:
        if self.env == "development":
            return self
        for url in (self.write_database_url, self.dashboards_database_url):
            if f":{_DEV_PASSWORD}@" in url:
                raise ValueError(f"refusing the development database password with PRISM_ENV={self.env}")
        if self.operator_token and len(self.operator_token) < 32:
            raise ValueError(f"PRISM_OPERATOR_TOKEN must have at least 32 characters with PRISM_ENV={self.env}")
        if self.stores == "cluster":
            raise ValueError(
                f"PRISM_STORES=cluster means this machine's development clusters; with PRISM_ENV={self.env} name each "
                "store's nodes (PRISM_REDIS_CLUSTER_NODES, PRISM_ELASTICSEARCH_URL, PRISM_DASHBOARDS_READ_URL)"
            )
        return self

    @model_validator(mode="after")
    def _per_projection_settings_name_projections(self) -> Settings:
        from projections.registry import PROJECTIONS

        for setting in ("poison_policies", "freshness_ms"):
            unknown = sorted(set(getattr(self, setting)) - set(PROJECTIONS))
            if unknown:
                raise ValueError(
                    f"PRISM_{setting.upper()} names no registered projection: {', '.join(unknown)} "
                    f"(registered: {', '.join(PROJECTIONS)})"
                )
        return self

    @model_validator(mode="after")
    def _jwt_needs_a_key(self) -> Settings:
        if (self.jwt_issuer or self.jwt_audience) and not self.jwt_configured:
            raise ValueError("PRISM_JWT_ISSUER/AUDIENCE need PRISM_JWT_JWKS_URL or PRISM_JWT_PUBLIC_KEY")
        return self

    def as_environment(self) -> dict[str, str]:
        """These settings as ``PRISM_*`` variables, for a child process (``prism serve`` of the bench or a test)."""
        out = {}
        for key, value in self.model_dump(mode="json").items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            out[f"PRISM_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def child_environment(self) -> dict[str, str]:
        """The environment of a child process that runs on these settings: this one's, its own ``PRISM_*`` replaced."""
        return {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")} | self.as_environment()

    @property
    def jwt_configured(self) -> bool:
        return bool(self.jwt_jwks_url or self.jwt_public_key)

    @property
    def uses_chdb(self) -> bool:
        return not self.clickhouse_url
