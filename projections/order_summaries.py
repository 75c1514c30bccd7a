"""Order summaries in Redis: one document per order for order pages, and per-customer recent-order indexes.

Where the keys live is ``projections.layouts.order_summaries``.
One batch costs three round trips: the rename indexes, the current documents and names (one script
call), and one script call that writes every document (guarded by position), the index entries and the
checkpoint, atomically, with every key it touches named (one slot on a Redis Cluster).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

import orjson

from projections import documents
from projections.base import Batch, Projection, forget_and_apply
from projections.layouts.order_summaries import (
    PROJECTION,
    Keys,
    is_cluster,
    pointer,
    read_checkpoint,
    served_version,
)
from projections.stores.clients import Stores
from write.events import StoredEvent
from write.facts import TenantFacts
from write.partitions import WHOLE, Partition

#: Keys per SCAN step and per UNLINK when a version is dropped.
DROP_CHUNK = 10_000

#: One batch, atomically (a script runs whole): each document written unless the stored one is newer, the index
#: entries added, the checkpoint moved forward only. ``doc`` is the answer an order page gets as it is; ``stamps`` is
#: what folding needs beside it (empty for names). KEYS: the checkpoint, the hashes, the sorted sets (customers' and
#: tenants' orders by placing time), the sets (products' orders). ARGV: the batch's position, the checkpoint this
#: writer last read or wrote, the three counts, per hash (pos, doc, stamps), per sorted set its count and (score,
#: member) pairs, per set its count and members. A checkpoint found behind what this writer wrote, by a batch that
#: moves it, means the store lost writes (a failover to a replica they had not reached, a restart without
#: persistence): nothing is written, and the refusal (``LOSTWRITES``, a store not ready) makes the worker read the
#: checkpoint again and apply from there.
GUARDED_WRITE = """
local current, upto = tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1])
if upto > current and current < tonumber(ARGV[2]) then
  return redis.error_reply('LOSTWRITES the checkpoint is at ' .. current .. ', behind ' .. ARGV[2] .. ' written before')
end
local hashes, zsets, sets = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local at, key = 6, 1
for _ = 1, hashes do
  key = key + 1
  local pos, doc, stamps = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2]
  at = at + 3
  if tonumber(redis.call('HGET', KEYS[key], 'pos') or '0') <= pos then
    if stamps == '' then redis.call('HSET', KEYS[key], 'doc', doc, 'pos', pos)
    else redis.call('HSET', KEYS[key], 'doc', doc, 'stamps', stamps, 'pos', pos) end
  end
end
for _ = 1, zsets + sets do
  key = key + 1
  local count, command, width = tonumber(ARGV[at]), 'SADD', 1
  if key <= 1 + hashes + zsets then command, width = 'ZADD', 2 end
  at = at + 1
  for first = at, at + count * width - 1, 1000 * width do  -- a bounded number of arguments per command
    redis.call(command, KEYS[key], unpack(ARGV, first, math.min(first + 1000 * width, at + count * width) - 1))
  end
  at = at + count * width
end
if current < upto then redis.call('SET', KEYS[1], upto) end
return 1
"""

#: The ``doc`` and ``stamps`` fields of each hash named in KEYS (false where there are none), in one command.
READ_DOCS = """
local docs = {}
for i = 1, #KEYS do
  local found = redis.call('HMGET', KEYS[i], 'doc', 'stamps')
  docs[2 * i - 1], docs[2 * i] = found[1], found[2]
end
return docs
"""
#: The fold's position stamps, kept out of the answer.
STAMPS = ("order_position", "customer_position", "position")


class OrderSummaries(Projection):
    """Projection of order events (and renames) into Redis order documents."""

    name: ClassVar[str] = PROJECTION
    store: ClassVar[str] = "redis"
    handles: ClassVar[frozenset[str]] = documents.HANDLES

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        super().__init__(stores, version, partition)
        self.redis = stores.redis
        self.keys = Keys(stores.namespace, version, partition, cluster=is_cluster(self.redis))
        self.namespace = stores.namespace
        self._write = self.redis.register_script(GUARDED_WRITE)
        self._read_docs = self.redis.register_script(READ_DOCS)
        #: The checkpoint this object last read or wrote: one found behind it in the store means lost writes.
        self._written = 0

    async def setup(self) -> None:
        """Redis needs no schema (the script loads on first use); only the pointer, if no version is served yet."""
        await self.redis.set(self.keys.serving, self._pointer(), nx=True)

    async def serve(self) -> None:
        await self.redis.set(self.keys.serving, self._pointer())

    def _pointer(self) -> str:
        return pointer(self.version, self.partition.count, self.keys.cluster)

    async def is_served(self) -> bool:
        return await served_version(self.redis, self.namespace) == self.version

    async def checkpoint(self) -> int:
        self._written = await read_checkpoint(self.redis, self.keys)  # what the next batch's write expects at least
        return self._written

    async def apply(self, batch: Batch) -> None:
        current, dims = await self._current(batch)
        changed, changed_dims = documents.fold(current, batch.events, dims)
        keys: list[str] = [self.keys.checkpoint]
        hashes: list[Any] = []
        for order_id, doc in changed.items():
            keys.append(self.keys.order(order_id))
            hashes += [doc["position"], *_stored(doc)]
        for key, dim in changed_dims.items():
            keys.append(self.keys.dimension(key))
            hashes += [dim["position"], _json(dim), ""]
        by_placing, by_product = self._index(changed.values())
        indexes: list[Any] = []
        for key, scored in by_placing.items():
            keys.append(key)
            indexes += [len(scored), *(part for member, score in scored.items() for part in (score, member))]
        for key, members in by_product.items():
            keys.append(key)
            indexes += [len(members), *sorted(members)]
        counts = [len(keys) - 1 - len(by_placing) - len(by_product), len(by_placing), len(by_product)]
        await self._write(keys=keys, args=[batch.upto, self._written, *counts, *hashes, *indexes])
        self._written = max(self._written, batch.upto)

    async def drop(self) -> None:
        """Every key of this version, ``DROP_CHUNK`` per ``UNLINK`` (Redis frees them in the background)."""
        found: list[bytes] = []
        async for key in self.redis.scan_iter(match=self.keys.version_pattern, count=DROP_CHUNK):
            found.append(key)
            if len(found) >= DROP_CHUNK:
                await self.redis.unlink(*found)
                found = []
        if found:
            await self.redis.unlink(*found)

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await forget_and_apply(self, order_ids, customer_ids, events)

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        keys = [self.keys.order(oid) for oid in order_ids]
        keys += [self.keys.dimension(documents.customer_key(cid)) for cid in customer_ids]
        if keys:
            await self.redis.delete(*keys)

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """The tenant's order documents, as the tenant's order index lists them."""
        ids = [_text(i) for i in await self.redis.zrange(self.keys.tenant_orders(tenant), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for oid in ids:
                pipe.hget(self.keys.order(oid), "doc")
            raw = await pipe.execute()
        return {
            oid: documents.fingerprint(orjson.loads(doc)) for oid, doc in zip(ids, raw, strict=True) if doc is not None
        }

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        return documents.expected_fingerprints(facts)

    async def state(self) -> dict[str, Any]:
        """Every key of this version with its value (sets sorted), by the key less the version's prefix."""
        state: dict[str, Any] = {}
        readers = {
            "hash": self.redis.hgetall,
            "set": self.redis.smembers,
            "string": self.redis.get,
            "zset": lambda k: self.redis.zrange(k, 0, -1, withscores=True),
        }
        async for raw in self.redis.scan_iter(match=self.keys.version_pattern, count=1000):
            key = _text(raw)
            kind = _text(await self.redis.type(key))
            value = await readers[kind](key)
            state[self.keys.within_version(key)] = sorted(value) if kind == "set" else value
        return state

    async def _current(self, batch: Batch) -> tuple[dict[str, documents.Doc], documents.Dims]:
        """The stored documents the batch touches (its orders, those its renames reach) and the names it needs."""
        ids = {ev.payload["order"]["order_id"] for ev in batch.events if "order" in ev.payload}
        ids |= await self._renamed_orders(batch)
        ordered, dim_keys = sorted(ids), sorted(documents.dimension_keys(batch.events))
        if not ordered and not dim_keys:
            return {}, {}
        raw = await self._read_docs(
            keys=[self.keys.order(oid) for oid in ordered] + [self.keys.dimension(key) for key in dim_keys]
        )
        docs = {oid: _folded(raw[2 * n], raw[2 * n + 1]) for n, oid in enumerate(ordered) if raw[2 * n] is not None}
        dims = {
            key: orjson.loads(raw[2 * (len(ordered) + n)])
            for n, key in enumerate(dim_keys)
            if raw[2 * (len(ordered) + n)] is not None
        }
        return docs, dims

    async def _renamed_orders(self, batch: Batch) -> set[str]:
        customers, products = documents.rename_targets(batch.events)
        if not customers and not products:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for customer_id in customers:
                pipe.zrange(self.keys.customer_orders(customer_id), 0, -1)
            for product_id in products:
                pipe.smembers(self.keys.product_orders(product_id))
            found = await pipe.execute()
        return {_text(order_id) for members in found for order_id in members}

    def _index(self, docs: Iterable[documents.Doc]) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
        """The index entries of the documents, by index key: the sorted sets' scored members, the sets' members."""
        by_placing: dict[str, dict[str, float]] = defaultdict(dict)
        by_product: dict[str, set[str]] = defaultdict(set)
        for doc in docs:
            score = datetime.fromisoformat(doc["placed_at"]).timestamp()
            by_placing[self.keys.customer_orders(doc["customer_id"])][doc["order_id"]] = score
            by_placing[self.keys.tenant_orders(doc["tenant_id"])][doc["order_id"]] = score
            for item in doc["items"]:
                by_product[self.keys.product_orders(item["product_id"])].add(doc["order_id"])
        return by_placing, by_product


def _stored(doc: documents.Doc) -> tuple[bytes, bytes]:
    """The answer an order page gets (no stamps), and the stamps apart."""
    page = {k: v for k, v in doc.items() if k not in STAMPS}
    page["items"] = [{k: v for k, v in item.items() if k != "name_position"} for item in doc["items"]]
    stamps = {k: doc[k] for k in STAMPS} | {"names": [item["name_position"] for item in doc["items"]]}
    return _json(page), _json(stamps)


def _folded(page: bytes, stamps: bytes | None) -> documents.Doc:
    """The document folding works on, from what ``_stored`` wrote."""
    doc, kept = orjson.loads(page), orjson.loads(stamps or b"{}")
    names = kept.pop("names", [])
    doc |= kept
    for item, stamp in zip(doc["items"], names, strict=False):
        item["name_position"] = stamp
    return doc


def _json(value: dict) -> bytes:
    return orjson.dumps(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
