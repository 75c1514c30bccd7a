"""The Elasticsearch adapter: the order search's client, with a deadline on every request, and what the client's
errors mean."""

from __future__ import annotations

import logging
from typing import Any

import elastic_transport
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError
from elasticsearch.serializer import OrjsonSerializer

from projections.stores.adapter import StoreAdapter, StoreSettings, describe
from write.errors import PrismError

#: Answers a projection or layout expects in its normal course (an index already there, a replayed checkpoint, a
#: document not there yet), under the adapter's names so that no other module names the driver's types.
BadRequest, Conflict, Missing = BadRequestError, ConflictError, NotFoundError
# The client logs each retried failure with its traceback; the adapter's translation says it once, in one line.
logging.getLogger("elastic_transport.transport").setLevel(logging.ERROR)
#: Statuses that mean "not now": too many requests (a full write queue), a gateway or node not ready.
BUSY_STATUSES = frozenset({429, 502, 503, 504})


class ElasticsearchAdapter(StoreAdapter):
    """Elasticsearch, holding the order search."""

    name = "elasticsearch"
    errors = (OSError, ApiError, elastic_transport.TransportError)

    def open(self, settings: StoreSettings, deadline: float) -> Any:
        # One retry, for a dead pooled connection; never after a timeout (a hung node would cost a caller three
        # deadlines). Calls that legitimately take longer (a rebuild's bulk and refresh) say so with
        # ``client.options(request_timeout=...)``.
        return AsyncElasticsearch(
            settings.elasticsearch_url,
            request_timeout=deadline,
            max_retries=1,
            retry_on_timeout=False,
            serializer=OrjsonSerializer(),
        )

    async def close(self, client: Any) -> None:
        await client.close()

    async def ping(self, client: Any) -> None:
        await client.cluster.health(timeout="2s")

    def recognize(self, error: BaseException) -> PrismError | None:
        if isinstance(error, ApiError):
            if error.meta.status in BUSY_STATUSES:
                return self.unavailable(f"HTTP {error.meta.status}: {describe(error)}")
            return self.rejected(f"HTTP {error.meta.status}: {describe(error)}")
        if isinstance(error, elastic_transport.TransportError):  # refused, reset, timed out, TLS
            return self.unavailable(describe(error))
        return None


ELASTICSEARCH = ElasticsearchAdapter()
