"""Where the Redis order summaries live, and how the served version, its checkpoint and its documents are read.

Each version keeps its keys under its own prefix; ``<namespace>:os:serving`` holds
the version readers see, and readers follow it inside one script call.
Keys (``p`` = ``<namespace>:os:v<version>:``):
- ``p order:<id>``: hash ``doc`` (JSON) and ``pos`` (log position it reflects);
- ``p customer:<id>:orders`` and ``p tenant:<id>:orders``: sorted sets of order ids by placing time;
- ``p product:<id>:orders``: set of order ids, to reach the documents a product rename changes;
- ``p dim:customer:<id>``, ``p dim:product:<id>``: newest known names (hash ``doc``/``pos``);
- ``p checkpoint``: last applied position.
"""

from __future__ import annotations

from write.partitions import WHOLE, Partition

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


class Keys:
    """Key layout of one version of the summaries."""

    def __init__(self, namespace: str, version: int = 1, partition: Partition = WHOLE) -> None:
        self.root = f"{namespace}:os:"
        self.prefix = f"{self.root}v{version}:"
        self.serving = f"{self.root}serving"
        self.partition = partition

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
        return f"{self.prefix}checkpoint{self.partition.suffix}"


async def read_checkpoint(redis, keys: Keys) -> int:
    return int(await redis.get(keys.checkpoint) or 0)


async def served_version(redis, namespace: str) -> int:
    return int(await redis.get(Keys(namespace).serving) or 1)


class ServedReader:
    """What readers see: the served version's checkpoint and documents, each read in one round trip."""

    def __init__(self, redis, namespace: str) -> None:
        self.keys = Keys(namespace)
        self._read = redis.register_script(READ_SERVED)
        self._page = redis.register_script(READ_CUSTOMER_PAGE)

    async def order(self, order_id: str, part: str = "") -> tuple[int, bytes | None]:
        """The checkpoint (of the partition ``part`` names) and the order's document as stored: the JSON of the
        answer (without its consistency)."""
        checkpoint, doc = await self._read(keys=[self.keys.serving], args=[self.keys.root + "v", order_id, part])
        return int(checkpoint or 0), doc or None

    async def customer_orders(
        self, customer_id: str, after: str | None, limit: int, tenant: str, part: str = ""
    ) -> tuple[int, list[bytes] | None, int]:
        """Checkpoint, up to ``limit`` documents as stored after the ``after`` order (None unless it is an order of
        this customer in ``tenant``), and how many remain."""
        checkpoint, docs, remaining = await self._page(
            keys=[self.keys.serving], args=[self.keys.root + "v", customer_id, after or "", limit, tenant, part]
        )
        if docs is None:
            return int(checkpoint), None, 0
        return int(checkpoint), [doc for doc in docs if doc], int(remaining)
