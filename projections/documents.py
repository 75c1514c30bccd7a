"""Order documents as order pages and search boxes show them, folded from events.

Pure functions: a document carries the log ``position`` it reflects, and an
event changes it only when the event is newer, which makes applying the same
events twice, or an older batch after a newer one, a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from write import events as e
from write.events import StoredEvent

Doc = dict[str, Any]


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
        "items": [dict(item) for item in order["items"]],
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
        "position": event.position,
    }


def _renamed_customer(doc: Doc, event: StoredEvent) -> Doc | None:
    if doc["customer_id"] != event.payload["customer_id"] or doc["position"] >= event.position:
        return None
    return doc | {"customer_name": event.payload["name"], "customer_email": event.payload["email"],
                  "position": event.position}


def _renamed_product(doc: Doc, event: StoredEvent) -> Doc | None:
    pid = event.payload["product_id"]
    if doc["position"] >= event.position or all(item["product_id"] != pid for item in doc["items"]):
        return None
    items = [item | {"product_name": event.payload["name"]} if item["product_id"] == pid else item
             for item in doc["items"]]
    return doc | {"items": items, "position": event.position}


#: Events that change documents already written, and how.
RENAMES = {
    e.CUSTOMER_RENAMED: _renamed_customer,
    e.CUSTOMER_EMAIL_CHANGED: _renamed_customer,
    e.PRODUCT_RENAMED: _renamed_product,
}
HANDLES = e.ORDER_EVENTS | frozenset(RENAMES)


def fold(current: dict[str, Doc], events: Iterable[StoredEvent]) -> dict[str, Doc]:
    """Apply ``events`` in order to ``current`` (order id → document); return the documents that changed."""
    docs = dict(current)
    changed: dict[str, Doc] = {}
    for event in events:
        for doc in _step(docs, event):
            docs[doc["order_id"]] = changed[doc["order_id"]] = doc
    return changed


def _step(docs: dict[str, Doc], event: StoredEvent) -> list[Doc]:
    if event.type in e.ORDER_EVENTS:
        doc = order_document(event)
        existing = docs.get(doc["order_id"])
        return [doc] if existing is None or existing["position"] < event.position else []
    rename = RENAMES.get(event.type)
    if rename is None:
        return []
    return [new for new in (rename(doc, event) for doc in docs.values()) if new is not None]


def rename_targets(events: Iterable[StoredEvent]) -> tuple[set[str], set[str]]:
    """Customer ids and product ids whose existing documents the events rename."""
    customers = {ev.payload["customer_id"] for ev in events if ev.type in (e.CUSTOMER_RENAMED, e.CUSTOMER_EMAIL_CHANGED)}
    products = {ev.payload["product_id"] for ev in events if ev.type == e.PRODUCT_RENAMED}
    return customers, products
