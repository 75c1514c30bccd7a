"""The Elasticsearch adapter: the order search's client, with a deadline on every request, and what the client's
errors mean.

The client is imported on first use (``open``, ``errors``, or one of the names below), not with this module: a
process with no Elasticsearch work (a Redis or dashboards worker, serve's supervisor) never loads it, ~24 MB each.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from projections.stores.adapter import StoreAdapter, StoreSettings, describe
from write.errors import PrismError

#: Answers a projection or layout expects in its normal course (an index already there, a replayed checkpoint, a
#: document not there yet), under the adapter's names so that no other module names the driver's types; read
#: through ``__getattr__`` so that naming them does not load the client before it is used.
_EXPECTED = {"BadRequest": "BadRequestError", "Conflict": "ConflictError", "Missing": "NotFoundError"}
# The client logs each retried failure with its traceback, and each failing node's count of failures in a row; the
# adapter's translation says it once, in one line.
for _chatty in ("elastic_transport.transport", "elastic_transport.node_pool"):
    logging.getLogger(_chatty).setLevel(logging.ERROR)
#: Statuses that mean "not now": too many requests (a full write queue), a gateway or node not ready.
BUSY_STATUSES = frozenset({429, 502, 503, 504})


def __getattr__(name: str) -> Any:
    if name in _EXPECTED:
        import elasticsearch

        return getattr(elasticsearch, _EXPECTED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scan(client: Any, **search: Any) -> Any:
    """Every hit of a search, in pages (the client's ``async_scan``)."""
    from elasticsearch.helpers import async_scan

    return async_scan(client, **search)


class ElasticsearchAdapter(StoreAdapter):
    """Elasticsearch, holding the order search."""

    name = "elasticsearch"

    @property
    def errors(self) -> tuple[type[Exception], ...]:  # type: ignore[override]  # the client's types, loaded on use
        import elastic_transport
        import elasticsearch

        return (OSError, elasticsearch.ApiError, elastic_transport.TransportError)

    def open(self, settings: StoreSettings, deadline: float) -> Any:
        from elasticsearch import AsyncElasticsearch
        from elasticsearch.serializer import OrjsonSerializer

        # A call that cannot connect (a dead pooled connection, a lost node) is tried once more on each other node;
        # never after a timeout (a hung node would cost a caller several deadlines). Calls that legitimately take
        # longer (a rebuild's bulk and refresh) say so with ``client.options(request_timeout=...)``.
        nodes = [url.strip() for url in settings.elasticsearch_url.split(",") if url.strip()]
        return AsyncElasticsearch(
            nodes,
            request_timeout=deadline,
            max_retries=max(1, len(nodes)),
            retry_on_timeout=False,
            serializer=OrjsonSerializer(),
        )

    async def close(self, client: Any) -> None:
        await client.close()

    async def ping(self, client: Any) -> None:
        await client.cluster.health(timeout="2s")

    def recognize(self, error: BaseException) -> PrismError | None:
        if "elasticsearch" not in sys.modules:  # the client was never loaded here: the error is not its
            return None
        import elastic_transport
        from elasticsearch import ApiError

        if isinstance(error, ApiError):
            if error.meta.status in BUSY_STATUSES:
                return self.unavailable(f"HTTP {error.meta.status}: {describe(error)}")
            return self.rejected(f"HTTP {error.meta.status}: {describe(error)}")
        if isinstance(error, elastic_transport.TransportError):  # refused, reset, timed out, TLS
            return self.unavailable(describe(error))
        return None


ELASTICSEARCH = ElasticsearchAdapter()
