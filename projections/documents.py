"""Order documents as order pages and search boxes show them, folded from events.

Pure functions. A document is three kinds of facts, each stamped with the log
position it came from: the order's own fields (``order_position``), the customer's
name and email (``customer_position``) and each item's product name
(``name_position``). An event changes a kind of fact only when it is newer than
that stamp, so re-applying events, or applying an older batch after a newer one,
ends in the same document as an in-order run. ``position`` is the newest stamp.

The newest known name of each customer and product is kept too (a *dimension*),
so an order event that arrives after a rename it predates still gets the new name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from write import events as e
from write.events import StoredEvent
from write.facts import TenantFacts

Doc = dict[str, Any]
Dims = dict[str, Doc]


def customer_key(customer_id: str) -> str:
    return f"customer:{customer_id}"


def product_key(product_id: str) -> str:
    return f"product:{product_id}"


def order_document(event: StoredEvent) -> Doc:
    """The whole document, from the snapshot every order event carries."""
    order = event.payload["order"]
    customer = order["customer"]
    return {
        "order_id": order["order_id"],
        "tenant_id": event.tenant_id,
        "customer_id": customer["id"],
        "customer_name": customer["name"],
        "customer_email": customer["email"],
        "status": order["status"],
        "items": [dict(item, name_position=event.position) for item in order["items"]],
        "item_count": sum(item["quantity"] for item in order["items"]),
        "subtotal": order["subtotal"],
        "discount_percent": order["discount_percent"],
        "discount": order["discount"],
        "total": order["total"],
        "discount_authorised_by": order["discount_authorised_by"],
        "note": order["note"],
        "cancel_reason": order["cancel_reason"],
        "placed_at": order["placed_at"],
        "confirmed_at": order["confirmed_at"],
        "shipped_at": order["shipped_at"],
        "cancelled_at": order["cancelled_at"],
        "updated_at": event.occurred_at.isoformat(),
        "version": order["version"],
        "order_position": event.position,
        "customer_position": event.position,
        "position": event.position,
    }


_CUSTOMER_FIELDS = ("customer_name", "customer_email", "customer_position")


def _merge_order(doc: Doc | None, event: StoredEvent) -> Doc | None:
    """The order's newer facts over the stored ones; None when nothing is newer."""
    new = order_document(event)
    if doc is None:
        return new
    merged = dict(doc)
    if event.position > doc["order_position"]:
        merged |= {k: v for k, v in new.items() if k not in _CUSTOMER_FIELDS and k != "items"}
        names = {item["product_id"]: item for item in doc["items"]}
        merged["items"] = [_newer_name(item, names.get(item["product_id"])) for item in new["items"]]
    if event.position > doc["customer_position"]:
        merged |= {k: new[k] for k in _CUSTOMER_FIELDS}
    return _stamped(merged) if merged != doc else None


def _newer_name(item: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    if stored is not None and stored["name_position"] > item["name_position"]:
        return item | {"product_name": stored["product_name"], "name_position": stored["name_position"]}
    return item


def _renamed_customer(doc: Doc, event: StoredEvent) -> Doc | None:
    if doc["customer_id"] != event.payload["customer_id"] or doc["customer_position"] >= event.position:
        return None
    return _stamped(
        doc
        | {
            "customer_name": event.payload["name"],
            "customer_email": event.payload["email"],
            "customer_position": event.position,
        }
    )


def _renamed_product(doc: Doc, event: StoredEvent) -> Doc | None:
    pid = event.payload["product_id"]
    stale = [i for i in doc["items"] if i["product_id"] == pid and i["name_position"] < event.position]
    if not stale:
        return None
    items = [
        item | {"product_name": event.payload["name"], "name_position": event.position} if item in stale else item
        for item in doc["items"]
    ]
    return _stamped(doc | {"items": items})


def _stamped(doc: Doc) -> Doc:
    stamps = [doc["order_position"], doc["customer_position"], *(i["name_position"] for i in doc["items"])]
    return doc | {"position": max(stamps)}


#: Events that change documents already written, and how.
RENAMES = {
    e.CUSTOMER_RENAMED: _renamed_customer,
    e.CUSTOMER_EMAIL_CHANGED: _renamed_customer,
    e.PRODUCT_RENAMED: _renamed_product,
}
HANDLES = e.ORDER_EVENTS | frozenset(RENAMES)


def fold(
    current: dict[str, Doc], events: Iterable[StoredEvent], dims: Dims | None = None
) -> tuple[dict[str, Doc], Dims]:
    """Apply ``events`` in order to ``current`` (order id → document) and ``dims`` (see ``dimension_keys``).

    Returns the documents and the dimensions that changed.
    """
    docs, known = dict(current), dict(dims or {})
    changed: dict[str, Doc] = {}
    changed_dims: Dims = {}
    mentions: dict[str, set[str]] = {}  # customer or product key -> the orders that mention it
    for doc in docs.values():
        _mention(mentions, doc)
    for event in events:
        for key, dim in _dimension(known, event):
            known[key] = changed_dims[key] = dim
        for doc in _step(docs, event, known, mentions):
            docs[doc["order_id"]] = changed[doc["order_id"]] = doc
            _mention(mentions, doc)
    return changed, changed_dims


def _mention(mentions: dict[str, set[str]], doc: Doc) -> None:
    mentions.setdefault(customer_key(doc["customer_id"]), set()).add(doc["order_id"])
    for item in doc["items"]:
        mentions.setdefault(product_key(item["product_id"]), set()).add(doc["order_id"])


def _dimension(known: Dims, event: StoredEvent) -> list[tuple[str, Doc]]:
    """The newer customer or product name an event brings, if any."""
    p = event.payload
    if event.type in (e.CUSTOMER_RENAMED, e.CUSTOMER_EMAIL_CHANGED):
        key, dim = customer_key(p["customer_id"]), {"name": p["name"], "email": p["email"]}
    elif event.type == e.PRODUCT_RENAMED:
        key, dim = product_key(p["product_id"]), {"name": p["name"]}
    else:
        return []
    stored = known.get(key)
    if stored is not None and stored["position"] >= event.position:
        return []
    return [(key, dim | {"position": event.position})]


def _step(docs: dict[str, Doc], event: StoredEvent, dims: Dims, mentions: dict[str, set[str]]) -> list[Doc]:
    if event.type in e.ORDER_EVENTS:
        oid = event.payload["order"]["order_id"]
        merged = _merge_order(docs.get(oid), event)
        overlaid = _with_dimensions(merged or docs[oid], dims)
        return [overlaid] if overlaid != docs.get(oid) else []
    rename = RENAMES.get(event.type)
    if rename is None:
        return []
    p = event.payload
    named = customer_key(p["customer_id"]) if "customer_id" in p else product_key(p["product_id"])
    reached = (docs[oid] for oid in sorted(mentions.get(named, ())))  # only the orders naming it, not the batch
    return [new for new in (rename(doc, event) for doc in reached) if new is not None]


def _with_dimensions(doc: Doc, dims: Dims) -> Doc:
    """Newer names from the dimensions over the document's own."""
    customer = dims.get(customer_key(doc["customer_id"]))
    if customer is not None and customer["position"] > doc["customer_position"]:
        doc = doc | {
            "customer_name": customer["name"],
            "customer_email": customer["email"],
            "customer_position": customer["position"],
        }
    items = [_renamed_item(item, dims.get(product_key(item["product_id"]))) for item in doc["items"]]
    return _stamped(doc | {"items": items})


def _renamed_item(item: dict[str, Any], product: Doc | None) -> dict[str, Any]:
    if product is not None and product["position"] > item["name_position"]:
        return item | {"product_name": product["name"], "name_position": product["position"]}
    return item


def dimension_keys(events: list[StoredEvent]) -> set[str]:
    """The dimensions a batch reads: every customer and product its order events or renames mention."""
    keys: set[str] = set()
    for ev in events:
        if "order" in ev.payload:
            keys.add(customer_key(ev.payload["order"]["customer"]["id"]))
            keys |= {product_key(item["product_id"]) for item in ev.payload["order"]["items"]}
        elif ev.type in (e.CUSTOMER_RENAMED, e.CUSTOMER_EMAIL_CHANGED):
            keys.add(customer_key(ev.payload["customer_id"]))
        elif ev.type == e.PRODUCT_RENAMED:
            keys.add(product_key(ev.payload["product_id"]))
    return keys


def rename_targets(events: list[StoredEvent]) -> tuple[set[str], set[str]]:
    """Customer ids and product ids whose existing documents the events rename."""
    customers = {
        ev.payload["customer_id"] for ev in events if ev.type in (e.CUSTOMER_RENAMED, e.CUSTOMER_EMAIL_CHANGED)
    }
    products = {ev.payload["product_id"] for ev in events if ev.type == e.PRODUCT_RENAMED}
    return customers, products


def fingerprint(doc: Doc) -> tuple:
    """What the audit compares of a stored document: the fields the write model also holds."""
    return (
        doc["status"],
        doc["total"],
        doc["version"],
        doc["customer_name"],
        doc["customer_email"],
        tuple(item["product_name"] for item in sorted(doc["items"], key=lambda i: i["line_no"])),
    )


def expected_fingerprints(facts: TenantFacts) -> dict[str, tuple]:
    """``fingerprint`` of each order's document, as the write model's facts say it should be (pure)."""
    return {
        o.id: (o.status, o.total, o.version, facts.customer_of(o).name, facts.customer_of(o).email, o.product_names)
        for o in facts.orders.values()
    }
