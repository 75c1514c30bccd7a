"""The clients of the read stores, opened by a composition root and handed to projections and readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stores:
    """Clients of the read stores, opened by a composition root and handed to projections and readers."""

    namespace: str
    redis: Any = None
    elasticsearch: Any = None
    clickhouse: Any = None
    #: Readers' ClickHouse clients (a ``ReadPool``), apart from the projection's ``clickhouse``.
    clickhouse_reads: Any = None
    dashboards: Any = None
    #: Readers' dashboards engine on a streaming replica (``dashboards_read_url``), apart from the projection's.
    dashboards_reads: Any = None
    #: Shards and replicas of each order search index (Elasticsearch's index settings; empty: one shard, no replica).
    search_index: dict[str, int] = field(default_factory=dict)
    #: The deadline its clients were opened with (seconds): what a reader's call may take.
    deadline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dashboards_for_reads(self) -> Any:
        """The engine the dashboards' readers query: the replica's if there is one, else the primary's."""
        return self.dashboards if self.dashboards_reads is None else self.dashboards_reads
