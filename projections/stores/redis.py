"""The Redis adapter: the order summaries' client, with a deadline on every call, and what redis-py's errors mean."""

from __future__ import annotations

from typing import Any

from redis import exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from projections.stores.adapter import StoreAdapter, StoreSettings, describe
from write.errors import PrismError

#: Redis error codes (the first word of an error reply) that mean "not now": out of memory, a script running,
#: loading its data set, a replica or cluster not ready; and Prism's own ``LOSTWRITES``, a batch refused because the
#: store lost writes it had acknowledged (``projections.order_summaries.GUARDED_WRITE``: apply again from its
#: checkpoint). Not ``TRYAGAIN`` for that one: a cluster's client retries a ``TRYAGAIN`` itself until it gives up.
BUSY_CODES = frozenset({"OOM", "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "LOSTWRITES"})
#: redis-py's own types for some of those replies, and for a server that cannot be reached or did not answer.
UNAVAILABLE = (
    exceptions.ConnectionError,  # refused, reset, BusyLoadingError, MaxConnectionsError
    exceptions.TimeoutError,
    exceptions.OutOfMemoryError,
    exceptions.TryAgainError,
    exceptions.ClusterDownError,
    exceptions.ClusterError,  # a cluster's client out of attempts while its map settles (a failover)
    exceptions.ReadOnlyError,
)


class RedisAdapter(StoreAdapter):
    """Redis, holding the order summaries."""

    name = "redis"
    errors = (OSError, exceptions.RedisError)

    def open(self, settings: StoreSettings, deadline: float) -> Any:
        if settings.redis_cluster_nodes:
            return _cluster(settings, deadline)
        # One retry, on a fresh connection, and only when the pooled one was dead (a restarted Redis): a timeout is
        # not retried, so a hung Redis costs a caller one deadline, not four.
        return Redis.from_url(
            settings.redis_url,
            max_connections=64,
            socket_timeout=deadline,
            socket_connect_timeout=min(deadline, settings.store_timeout_seconds),
            retry=Retry(ExponentialBackoff(cap=0.2), 1),
            retry_on_error=[exceptions.ConnectionError],
        )

    async def close(self, client: Any) -> None:
        await client.aclose()

    async def ping(self, client: Any) -> None:
        await client.ping()

    def recognize(self, error: BaseException) -> PrismError | None:
        if isinstance(error, UNAVAILABLE):
            return self.unavailable(describe(error))
        if isinstance(error, exceptions.ResponseError):
            code = str(error).split(" ", 1)[0]
            return self.unavailable(describe(error)) if code in BUSY_CODES else self.rejected(describe(error))
        if isinstance(error, exceptions.RedisError):
            return self.rejected(describe(error))
        return None


def _cluster(settings: StoreSettings, deadline: float) -> RedisCluster:
    """A Redis Cluster's client. A master lost moves its slots to its replica: redis-py refreshes the cluster's map
    and tries a call that met the loss once more; a batch that fails meanwhile is retried by its worker, a reader
    answers 503. One retry, as for a single node: redis-py's cluster client retries a timeout too, so a hung node
    costs a caller two deadlines, not four."""
    nodes = [
        ClusterNode(host, int(port))
        for host, port in (n.rsplit(":", 1) for n in settings.redis_cluster_nodes.split(","))
    ]
    return RedisCluster(
        startup_nodes=nodes,
        max_connections=64,
        socket_timeout=deadline,
        socket_connect_timeout=min(deadline, settings.store_timeout_seconds),
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
    )


REDIS = RedisAdapter()
