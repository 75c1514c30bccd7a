"""Order search in Elasticsearch: one document per order, an explicit mapping, bulk writes.

Each document is indexed with ``version_type=external`` and the log position it
reflects as its version, so Elasticsearch itself refuses anything older: a replayed
or late batch earns 409s, which are expected and ignored. While readers search a
version, its refresh interval is the projection's freshness budget, and a live
bulk waits for the next refresh (``refresh=wait_for``) before the checkpoint moves,
so a reader that waited for position N can search what N wrote: commits gather
while a bulk waits, and each refresh makes one segment for all of them. A reader
waiting for a position has the projection refresh at once instead (``hurry``, and
``refresh=true`` for a batch a reader waits for). A version being built beside
the served one does not refresh at all (``refresh_interval: -1``, no refresh per
bulk: a rebuild's bulks then make fewer, larger segments); ``serve`` restores the
interval and refreshes before the aliases move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar

import orjson

from projections import documents
from projections.base import Batch, Projection
from projections.layouts.order_search import PROJECTION, Names, read_checkpoint
from projections.stores import elasticsearch as driver
from projections.stores.clients import Stores
from write.errors import StoreRejected, StoreUnavailable
from write.events import StoredEvent
from write.facts import TenantFacts
from write.partitions import WHOLE, Partition

#: Names: folded full text ("jose" finds "José"), the exact name for facets, and edge n-grams for suggestions.
log = logging.getLogger("prism.order_search")
_NAME = {
    "type": "text",
    "analyzer": "folded",
    "fields": {
        "raw": {"type": "keyword", "ignore_above": 256},
        "prefix": {"type": "text", "analyzer": "prefixes", "search_analyzer": "folded"},
    },
}
_FOLDED = {"type": "text", "analyzer": "folded"}
_MONEY = {"type": "double"}
_DATE = {"type": "date"}

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "order_id": {"type": "keyword"},
        "tenant_id": {"type": "keyword"},
        "customer_id": {"type": "keyword"},
        "customer_name": _NAME,
        "customer_email": {"type": "text", "analyzer": "folded", "fields": {"raw": {"type": "keyword"}}},
        "status": {"type": "keyword"},
        # Kept for the answer, not searched: product names are searched in the flat ``product_names``, far cheaper
        # to index and to query than one nested document per line.
        "items": {"type": "object", "enabled": False},
        # No length norms: an order scores by its best-matching product, not by how few products it has. Term
        # vectors let the fast vector highlighter mark the names without running the fuzzy query again per hit.
        "product_names": _NAME | {"norms": False, "term_vector": "with_positions_offsets"},
        "product_ids": {"type": "keyword"},
        "item_count": {"type": "integer"},
        "subtotal": _MONEY,
        "discount_percent": {"type": "double"},
        "discount": _MONEY,
        "total": _MONEY,
        "discount_authorised_by": {"type": "keyword"},
        "note": _FOLDED,
        "cancel_reason": _FOLDED,
        "placed_at": _DATE,
        "confirmed_at": _DATE,
        "shipped_at": _DATE,
        "cancelled_at": _DATE,
        "updated_at": _DATE,
        "version": {"type": "integer"},
        "order_position": {"type": "long", "index": False},
        "customer_position": {"type": "long", "index": False},
        "position": {"type": "long"},
    },
}
DIMENSIONS_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "name": {"type": "keyword", "index": False},
        "email": {"type": "keyword", "index": False},
        "position": {"type": "long"},
    },
}
#: Deadline of the calls whose work grows with the batch or the index (a rebuild's 10,000-event bulk, the refresh
#: of a whole index built unrefreshed), whatever the client's own.
LONG_CALL_SECONDS = 120.0
SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}
#: A version nobody searches yet: refreshed once, when it is served.
UNSERVED = {"refresh_interval": "-1"}
#: Largest bulk request body: past it a batch goes in several requests (Elasticsearch's own advice is 5-15 MB).
BULK_BYTES = 5 * 1024 * 1024
#: Bulk requests of one batch in flight at once.
BULK_CONCURRENCY = 2
#: How long a hurry waits for the bulk it released to return before it refreshes again.
HURRY_AGAIN_SECONDS = 0.1
#: Folding, lowercase and edge n-grams: from the prism-analysis plugin (infra/services/elasticsearch_plugins/) on
#: the Maven Central distribution, which has no analysis-common module; the built-in filters on a full server.
PLUGIN_FILTERS = {"lowercase": "prism_lowercase", "folding": "prism_folding", "prefixes": "prism_edge_ngram"}
BUILTIN_FILTERS = {"lowercase": "lowercase", "folding": "asciifolding", "prefixes": "prism_prefixes"}


def analysis(filters: dict[str, str]) -> dict[str, Any]:
    folded = [filters["lowercase"], filters["folding"]]
    settings: dict[str, Any] = {
        "analyzer": {
            "folded": {"type": "custom", "tokenizer": "standard", "filter": folded},
            "prefixes": {"type": "custom", "tokenizer": "standard", "filter": [*folded, filters["prefixes"]]},
        }
    }
    if filters["prefixes"] == "prism_prefixes":
        settings["filter"] = {"prism_prefixes": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}}
    return settings


def searchable(doc: documents.Doc) -> documents.Doc:
    """The document as indexed: its products' names and ids also in flat fields (searched and highlighted there,
    and found by a rename)."""
    return doc | {
        "product_names": [item["product_name"] for item in doc["items"]],
        "product_ids": [item["product_id"] for item in doc["items"]],
    }


class OrderSearch(Projection):
    """Projection of order events (and renames) into a searchable order index."""

    name: ClassVar[str] = PROJECTION
    store: ClassVar[str] = "elasticsearch"
    handles: ClassVar[frozenset[str]] = documents.HANDLES
    #: Its index's refresh interval while served: a live bulk waits for the next refresh, and commits gather meanwhile.
    freshness_ms: ClassVar[int] = 500
    gathers: ClassVar[bool] = False

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        super().__init__(stores, version, partition)
        self.es = stores.elasticsearch
        self.names = Names(stores.namespace, version, partition)
        self.namespace = stores.namespace
        self.search_index = stores.search_index  # shards and replicas, from the settings
        self._served = False  # once seen served, stays so for this object (a rollback leaves it refreshing, harmless)
        self._upto = 0  # the last batch's end: a reader waiting past it waits for the batch being written
        #: Set once the live bulk waiting for the next refresh has returned; None while no bulk waits.
        self._released: asyncio.Event | None = None
        self._interval_set = False

    def _interval(self) -> str:
        """The served refresh interval: the freshness budget (with none, each bulk refreshes, and this is a floor)."""
        return f"{round(self.budget * 1000)}ms" if self.budget else str(SETTINGS["refresh_interval"])

    async def setup(self) -> None:
        first = not await self.es.indices.exists_alias(name=self.names.alias)
        extra = {} if first else UNSERVED  # the first version is served at once, a later one when it has caught up
        extra = extra or {"refresh_interval": self._interval()}
        await self._create(self.names.index, MAPPING, analysis=analysis(await self._filters()), extra=extra)
        await self._create(self.names.dimensions, DIMENSIONS_MAPPING, extra=extra)
        await self._create(self.names.checkpoints, {"dynamic": "strict", "properties": {"position": {"type": "long"}}})
        if first:
            await self.serve()

    async def _refresh_at_budget(self) -> None:
        """The served refresh interval made the budget's, once per object: the budget may have changed since the
        index was created (asked by the worker's first live batch, which knows the budget the settings give)."""
        self._interval_set = True
        indexes, interval = [self.names.index, self.names.dimensions], self._interval()
        found = await self.es.indices.get_settings(index=indexes, name="index.refresh_interval")
        if any(s.get("settings", {}).get("index", {}).get("refresh_interval") != interval for s in found.values()):
            await self.es.indices.put_settings(index=indexes, settings={"refresh_interval": interval})

    async def hurry(self) -> None:
        """A reader waits: the bulk waiting for the next refresh is released by one now, and by another until it
        returns: a refresh that reaches the index before the bulk's documents do releases nothing, and the bulk
        would wait out the budget."""
        released = self._released
        while released is not None and not released.is_set():
            await self._refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), HURRY_AGAIN_SECONDS)

    async def _refresh(self, request_timeout: float | None = None) -> None:
        """Make what was written to this version's indexes searchable now."""
        es = self.es.options(request_timeout=request_timeout) if request_timeout else self.es
        await es.indices.refresh(index=[self.names.index, self.names.dimensions])

    async def is_served(self) -> bool:
        return bool(await self.es.indices.exists_alias(name=self.names.alias, index=self.names.index))

    async def _is_served(self) -> bool:
        """Whether readers search this version now.

        Asked once per batch until it is: a switch takes this version's lock, which
        the caller of ``apply`` holds, so the answer cannot change during the batch.
        """
        if not self._served:
            self._served = bool(await self.es.indices.exists_alias(name=self.names.alias, index=self.names.index))
        return self._served

    async def _filters(self) -> dict[str, str]:
        try:
            await self.es.indices.analyze(tokenizer="standard", filter=["prism_folding"], text="é")
        except driver.BadRequest:
            return BUILTIN_FILTERS
        return PLUGIN_FILTERS

    async def prepare(self) -> None:
        """Before a switch: the served refresh interval back, and the first refresh of what was built unrefreshed
        (the slow part of serving, done before the live version is held)."""
        indexes = [self.names.index, self.names.dimensions]
        await self.es.indices.put_settings(index=indexes, settings={"refresh_interval": self._interval()})
        await self._refresh(LONG_CALL_SECONDS)

    async def serve(self) -> None:
        """Searchable before the aliases move: ``prepare`` again (quick after a first one), then the aliases."""
        await self.prepare()
        await self.es.indices.update_aliases(actions=self.names.serving())
        self._served = True

    async def _create(
        self,
        index: str,
        mappings: dict[str, Any],
        analysis: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Create unless it exists; another process starting at the same time may win the race."""
        if await self.es.indices.exists(index=index):
            await self._add_new_fields(index, mappings)
            await self._warn_if_outdated(index, mappings)
            return
        settings = SETTINGS | self.search_index | (extra or {}) | ({"analysis": analysis} if analysis else {})
        try:
            await self.es.indices.create(index=index, mappings=mappings, settings=settings)
        except driver.BadRequest as error:
            if error.error != "resource_already_exists_exception":
                raise

    async def _add_new_fields(self, index: str, mappings: dict[str, Any]) -> None:
        """Fields this release adds (``product_names``) go into an older index too, so its strict mapping takes the
        new documents; what is already indexed has them once rewritten, or after a rebuild."""
        found = (await self.es.indices.get_mapping(index=index))[index]["mappings"].get("properties", {})
        added = {name: field for name, field in mappings["properties"].items() if name not in found}
        if added:
            await self.es.indices.put_mapping(index=index, properties=added)

    async def _warn_if_outdated(self, index: str, mappings: dict[str, Any]) -> None:
        """An index made by an older release keeps its mapping: say how to move to the current one."""
        found = await self.es.indices.get_mapping(index=index)
        if found[index]["mappings"].get("properties") != mappings["properties"]:
            log.warning(
                "%s has an older mapping than this release's; `prism rebuild %s` builds a version with the "
                "current one without downtime",
                index,
                self.name,
            )

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.es, self.names)

    async def apply(self, batch: Batch) -> None:
        current, dims = await self._current(batch)
        changed, changed_dims = documents.fold(current, batch.events, dims)
        if changed or changed_dims:
            await self._bulk(changed, changed_dims, backlog=batch.more)
        self._upto = max(self._upto, batch.upto)
        with contextlib.suppress(driver.Conflict):  # the checkpoint is already past this batch: a replay
            await self.es.index(
                index=self.names.checkpoints,
                id=self.names.checkpoint_id,
                version=batch.upto,
                version_type="external_gte",
                document={"position": batch.upto},
            )
            # No refresh: the checkpoint is read with a realtime GET; the documents were refreshed by their bulk.

    async def drop(self) -> None:
        await self.es.indices.delete(
            index=[self.names.index, self.names.dimensions, self.names.checkpoints], ignore_unavailable=True
        )  # the aliases go with their indexes

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        """Documents folded afresh from the events, written over whatever version is stored.

        Elasticsearch keeps a deleted document's version for a while, so instead of
        deleting, the rewrite takes a version at least the stored one.
        """
        handled = [ev for ev in events if ev.type in self.handles]
        dims = await self._get(self.names.dimensions, sorted(documents.dimension_keys(handled)))
        docs, _ = documents.fold({}, handled, dims)
        docs = {oid: doc for oid, doc in docs.items() if oid in set(order_ids)}
        if not docs:
            return
        found = await self.es.mget(index=self.names.index, ids=list(docs), realtime=True, source=False)
        stored = {hit["_id"]: hit.get("_version", 0) for hit in found["docs"] if hit.get("found")}
        operations: list[dict[str, Any]] = []
        for oid, doc in docs.items():
            version = max(doc["position"], stored.get(oid, 0))
            operations += [
                {"index": {"_index": self.names.index, "_id": oid, "version": version, "version_type": "external_gte"}},
                searchable(doc),
            ]
        await self.es.bulk(operations=operations, refresh=True)

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """The tenant's documents in this version's index, refreshed first (a version being built is not)."""
        await self.es.indices.refresh(index=self.names.index)
        query = {"query": {"term": {"tenant_id": tenant}}}
        return {
            hit["_id"]: documents.fingerprint(hit["_source"])
            async for hit in driver.scan(self.es, index=self.names.index, query=query)
        }

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        return documents.expected_fingerprints(facts)

    async def state(self) -> dict[str, Any]:
        """Each index's documents with their versions (the log positions they reflect), by index name less the
        namespace."""
        indexes = [self.names.index, self.names.dimensions]
        await self._refresh()
        state = {}
        for index in indexes:
            found = [hit async for hit in driver.scan(self.es, index=index, query={"version": True}, size=1000)]
            state[index.removeprefix(f"{self.namespace}-")] = {h["_id"]: (h["_version"], h["_source"]) for h in found}
        return state

    async def _bulk(self, docs: dict[str, documents.Doc], dims: documents.Dims, backlog: bool = False) -> None:
        """Bulk requests of at most ``BULK_BYTES``, ``BULK_CONCURRENCY`` at a time, searchable before this returns if
        readers search this version: a live batch waits for the next refresh, or forces one when a reader waits
        for it (asked before the bulk goes; one asking after is served by ``hurry``), in a ``backlog`` (a catch-up's
        full slice: waiting for each refresh would cap a catch-up at a slice per interval) or with no budget.

        One bulk request is indexed by one thread of the server; a batch's documents are
        distinct, so its requests may go side by side. ``external_gte`` because a merge
        may raise a lower stamp without a newer maximum.
        """
        chunks: list[list[bytes]] = [[]]  # encoded here: the client's bulk serializer is the standard library's
        size = 0
        for index, items in ((self.names.index, docs), (self.names.dimensions, dims)):
            for key, doc in items.items():
                action = orjson.dumps(
                    {"index": {"_index": index, "_id": key, "version": doc["position"], "version_type": "external_gte"}}
                )
                source = orjson.dumps(searchable(doc) if index == self.names.index else doc)
                if chunks[-1] and size + len(action) + len(source) > BULK_BYTES:
                    chunks.append([])
                    size = 0
                chunks[-1] += [action, source]
                size += len(action) + len(source) + 2
        served = await self._is_served()
        if len(chunks) == 1:  # a live batch, most often: searchable at the next refresh, or at once if awaited
            if served and not self._interval_set:
                await self._refresh_at_budget()
            if not served:
                await self._send(chunks[0], refresh=False)
            elif backlog or self.waited_for() > self._upto or not self.budget:
                await self._send(chunks[0], refresh=True)
            else:
                self._released = released = asyncio.Event()
                try:
                    await self._send(chunks[0], refresh="wait_for")
                finally:
                    released.set()
                    self._released = None
            return
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def send(chunk: list[bytes]) -> None:
            async with gate:
                await self._send(chunk, refresh=False)

        await asyncio.gather(*(send(chunk) for chunk in chunks))
        if served:
            await self._refresh(LONG_CALL_SECONDS)

    async def _send(self, operations: list[bytes], refresh: bool | str) -> None:
        response = await self.es.options(request_timeout=LONG_CALL_SECONDS).bulk(operations=operations, refresh=refresh)
        if response["errors"]:
            failures = [
                item["index"]
                for item in response["items"]
                if item["index"].get("status", 200) >= 300 and item["index"]["status"] != 409
            ]
            if any(f["status"] in (429, 503) for f in failures):
                raise StoreUnavailable("elasticsearch", f"overloaded: {failures[0].get('error')}")
            if failures:
                raise BulkRejected(f"{len(failures)} documents refused, first: {failures[0].get('error')}")

    async def _current(self, batch: Batch) -> tuple[dict[str, documents.Doc], documents.Dims]:
        """Stored documents of the batch's orders and names (realtime get), and every order its renames reach."""
        ids = sorted({ev.payload["order"]["order_id"] for ev in batch.events if "order" in ev.payload})
        dims = await self._get(self.names.dimensions, sorted(documents.dimension_keys(batch.events)))
        customers, products = documents.rename_targets(batch.events)
        reached = {}
        if customers or products:
            if not await self._is_served():  # the search below sees refreshed documents only
                await self.es.indices.refresh(index=self.names.index)
            reached = await self._reached_by(customers, products)
        return reached | await self._get(self.names.index, ids), dims

    async def _get(self, index: str, ids: list[str]) -> dict[str, documents.Doc]:
        if not ids:
            return {}
        found = await self.es.mget(index=index, ids=ids, realtime=True)
        return {hit["_id"]: hit["_source"] for hit in found["docs"] if hit.get("found")}

    async def _reached_by(self, customers: set[str], products: set[str]) -> dict[str, documents.Doc]:
        should: list[dict[str, Any]] = []
        if customers:
            should.append({"terms": {"customer_id": sorted(customers)}})
        if products:
            should.append({"terms": {"product_ids": sorted(products)}})
        query = {"query": {"bool": {"should": should, "minimum_should_match": 1}}}
        return {
            hit["_id"]: hit["_source"]
            async for hit in driver.scan(self.es, index=self.names.index, query=query, size=1000)
        }


class BulkRejected(StoreRejected):
    """Raised when Elasticsearch refuses documents for a reason other than a newer version."""

    def __init__(self, reason: str) -> None:
        super().__init__("elasticsearch", reason)
