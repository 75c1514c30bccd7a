"""Where the Redis order summaries live, and how the served version, its checkpoint and its documents are read.

Each version keeps its keys under its own prefix; ``<namespace>:os:serving`` holds
the version readers see (one key: a switch or a rollback is one ``SET``).
Keys (``p`` = the prefix of a version, or on a Redis Cluster of a partition of a version):
- ``p order:<id>``: hash ``doc`` (JSON) and ``pos`` (log position it reflects);
- ``p customer:<id>:orders`` and ``p tenant:<id>:orders``: sorted sets of order ids by placing time;
- ``p product:<id>:orders``: set of order ids, to reach the documents a product rename changes;
- ``p dim:customer:<id>``, ``p dim:product:<id>``: newest known names (hash ``doc``/``pos``);
- ``p checkpoint``: last applied position (of the partition, after the prefix, on a single node).

On a single node the prefix is ``<namespace>:os:v<version>:`` and a reader's script reads the pointer too. On a
Redis Cluster it is the hash tag ``{<namespace>:os:v<version>/<partition>}:``: every key a batch or a read touches
is a tenant's, and a tenant's keys are its partition's, so each call lands in one slot; the partitions
(``PRISM_PARTITIONS``) are what spreads the summaries over the cluster's masters. The pointer has a slot of its own
there, read in the same round trip as the data (a pipeline), with the data of the version it names.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from write import partitions
from write.partitions import SEPARATOR, WHOLE, Partition, named

#: The projection this layout stores (readers name it when they ask it to apply a position now).
PROJECTION = "order_summaries"

#: The served version's checkpoint (of the partition named by ARGV[3]) and one order document, in one round trip.
READ_SERVED = """
local prefix = ARGV[1] .. (redis.call('GET', KEYS[1]) or '1') .. ':'
return {redis.call('GET', prefix .. 'checkpoint' .. ARGV[3]), redis.call('HGET', prefix .. 'order:' .. ARGV[2], 'doc')}
"""


#: The served version's checkpoint and a page of one customer's orders, newest first, after the cursor order
#: (by its rank now, so orders placed meanwhile do not shift the page); ``false`` for a cursor that is not an
#: order of this customer in the caller's tenant (ARGV[5]): another tenant's order must look like an unknown one.
#: The checkpoint is that of the tenant's partition (ARGV[6]).
READ_CUSTOMER_PAGE = """
local prefix = ARGV[1] .. (redis.call('GET', KEYS[1]) or '1') .. ':'
local key = prefix .. 'customer:' .. ARGV[2] .. ':orders'
local start, limit = 0, tonumber(ARGV[4])
if ARGV[3] ~= '' then
  local rank = redis.call('ZREVRANK', key, ARGV[3])
  local doc = rank and redis.call('HGET', prefix .. 'order:' .. ARGV[3], 'doc')
  if not doc or cjson.decode(doc)['tenant_id'] ~= ARGV[5] then
    return {redis.call('GET', prefix .. 'checkpoint' .. ARGV[6]) or '0', false, 0}
  end
  start = rank + 1
end
local docs = {}
for i, id in ipairs(redis.call('ZRANGE', key, start, start + limit - 1, 'REV')) do
  docs[i] = redis.call('HGET', prefix .. 'order:' .. id, 'doc') or ''
end
return {redis.call('GET', prefix .. 'checkpoint' .. ARGV[6]) or '0', docs, redis.call('ZCARD', key) - start - #docs}
"""


#: On a Redis Cluster: the checkpoint (KEYS[1]) and one order document (KEYS[2]) of one version's partition.
READ_TAGGED = """
return {redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], 'doc')}
"""

#: On a Redis Cluster: ``READ_CUSTOMER_PAGE`` within one version's partition: KEYS are its checkpoint and the
#: customer's index, ARGV the prefix of its keys (the orders the index names share its hash tag, so its slot), the
#: cursor, the limit and the tenant.
READ_TAGGED_PAGE = """
local prefix, start, limit = ARGV[1], 0, tonumber(ARGV[3])
if ARGV[2] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[2], ARGV[2])
  local doc = rank and redis.call('HGET', prefix .. 'order:' .. ARGV[2], 'doc')
  if not doc or cjson.decode(doc)['tenant_id'] ~= ARGV[4] then
    return {redis.call('GET', KEYS[1]) or '0', false, 0}
  end
  start = rank + 1
end
local docs = {}
for i, id in ipairs(redis.call('ZRANGE', KEYS[2], start, start + limit - 1, 'REV')) do
  docs[i] = redis.call('HGET', prefix .. 'order:' .. id, 'doc') or ''
end
return {redis.call('GET', KEYS[1]) or '0', docs, redis.call('ZCARD', KEYS[2]) - start - #docs}
"""


def is_cluster(redis: Any) -> bool:
    """Whether the client is a Redis Cluster's: the summaries' keys then carry their partition's hash tag."""
    return isinstance(redis, RedisCluster)


class Keys:
    """Key layout of one version of the summaries (of one partition of it, on a Redis Cluster)."""

    def __init__(self, namespace: str, version: int = 1, partition: Partition = WHOLE, cluster: bool = False) -> None:
        self.root = f"{namespace}:os:"
        self.serving = f"{self.root}serving"
        self.partition = partition
        self.cluster = cluster
        version_name = f"{self.root}v{version}"
        self.prefix = f"{{{version_name}{partition.suffix}}}:" if cluster else f"{version_name}:"
        #: What every key of the version matches, whichever partition holds it (a drop's ``SCAN``).
        self.version_pattern = f"{{{version_name}[}}{SEPARATOR}]*" if cluster else f"{version_name}:*"
        self._version_name = version_name

    def within_version(self, key: str) -> str:
        """A key of the version less what every key of it starts with (its partition stays, on a cluster)."""
        return key.removeprefix("{" + self._version_name if self.cluster else self.prefix)

    def order(self, order_id: str) -> str:
        return f"{self.prefix}order:{order_id}"

    def dimension(self, key: str) -> str:
        return f"{self.prefix}dim:{key}"

    def customer_orders(self, customer_id: str) -> str:
        return f"{self.prefix}customer:{customer_id}:orders"

    def tenant_orders(self, tenant_id: str) -> str:
        return f"{self.prefix}tenant:{tenant_id}:orders"

    def product_orders(self, product_id: str) -> str:
        return f"{self.prefix}product:{product_id}:orders"

    @property
    def checkpoint(self) -> str:
        """The partition's checkpoint: the version's for a projection that is not split."""
        return f"{self.prefix}checkpoint" + ("" if self.cluster else self.partition.suffix)


async def read_checkpoint(redis, keys: Keys) -> int:
    return int(await redis.get(keys.checkpoint) or 0)


async def served_version(redis, namespace: str) -> int:
    return parse_pointer(await redis.get(Keys(namespace).serving))[0]


def pointer(version: int, partitions: int, cluster: bool) -> str:
    """What the serving pointer holds: the version; on a Redis Cluster also its partition count (``3/8``), which
    says in which partition's slot a reader finds a tenant's keys, switched with the version in the same ``SET``."""
    return f"{version}{SEPARATOR}{partitions}" if cluster else str(version)


def parse_pointer(raw: bytes | str | None) -> tuple[int, int | None]:
    """The served version (1 before any is) and, on a cluster, its partition count."""
    text = raw.decode() if isinstance(raw, bytes) else (raw or "1")
    version, _, count = text.partition(SEPARATOR)
    return int(version), int(count) if count else None


class ServedReader:
    """What readers see: the served version's checkpoint and documents, each read in one round trip."""

    def __init__(self, redis, namespace: str) -> None:
        self.redis, self.namespace = redis, namespace
        self.keys = Keys(namespace)
        self.cluster = is_cluster(redis)
        self._read = redis.register_script(READ_SERVED)
        self._page = redis.register_script(READ_CUSTOMER_PAGE)
        #: On a cluster: the pointer last seen (version, partitions), whose keys the next read names beside its read.
        self._served: tuple[int, int | None] = (1, None)

    async def order(self, order_id: str, part: str = "", tenant: str = "") -> tuple[int, bytes | None]:
        """The checkpoint (of the partition ``part`` names: the ``tenant``'s) and the order's document as stored: the
        JSON of the answer (without its consistency)."""
        if self.cluster:
            checkpoint, doc = await self._tagged(
                part, tenant, lambda k: (READ_TAGGED, [k.checkpoint, k.order(order_id)], [])
            )
        else:
            checkpoint, doc = await self._read(keys=[self.keys.serving], args=[self.keys.root + "v", order_id, part])
        return int(checkpoint or 0), doc or None

    async def customer_orders(
        self, customer_id: str, after: str | None, limit: int, tenant: str, part: str = ""
    ) -> tuple[int, list[bytes] | None, int]:
        """Checkpoint, up to ``limit`` documents as stored after the ``after`` order (None unless it is an order of
        this customer in ``tenant``), and how many remain."""
        if self.cluster:
            checkpoint, docs, remaining = await self._tagged(
                part,
                tenant,
                lambda k: (
                    READ_TAGGED_PAGE,
                    [k.checkpoint, k.customer_orders(customer_id)],
                    [k.prefix, after or "", limit, tenant],
                ),
            )
        else:
            checkpoint, docs, remaining = await self._page(
                keys=[self.keys.serving], args=[self.keys.root + "v", customer_id, after or "", limit, tenant, part]
            )
        if docs is None:
            return int(checkpoint), None, 0
        return int(checkpoint), [doc for doc in docs if doc], int(remaining)

    async def _tagged(self, part: str, tenant: str, call) -> Any:
        """One script's answer from the served version's partition holding the tenant: the pointer and the script of
        the pointer last seen go in one pipeline (their slots differ), again with what the pointer says if it moved
        (a switch, perhaps to another partition count than the one ``part`` was worked out from)."""
        while True:
            version, count = self._served
            held = partitions.of(tenant, count) if tenant and count else named(part)
            script, keys, args = call(Keys(self.namespace, version, held, cluster=True))
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.serving)
                pipe.eval(script, len(keys), *keys, *args)
                served, answer = await pipe.execute()
            if parse_pointer(served) == self._served:
                return answer
            self._served = parse_pointer(served)
