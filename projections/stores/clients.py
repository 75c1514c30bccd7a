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
    #: The deadline its clients were opened with (seconds): what a reader's call may take.
    deadline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
