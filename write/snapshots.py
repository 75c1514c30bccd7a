"""Event payloads: the facts a projection needs, money as strings."""

from __future__ import annotations

from typing import Any

from write import addresses
from write.domain import Order


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def order(o: Order, customer: Any) -> dict[str, Any]:
    """A full snapshot of the order, its customer and its lines."""
    return {
        "order_id": str(o.id),
        "customer": {"id": str(customer.id), "name": customer.name, "email": customer.email},
        "status": o.status,
        "items": [
            {
                "line_no": ln.line_no,
                "product_id": str(ln.product_id),
                "product_name": ln.product_name,
                "quantity": ln.quantity,
                "unit_price": str(ln.unit_price),
                "line_total": str(ln.line_total),
            }
            for ln in o.lines
        ],
        "subtotal": str(o.subtotal),
        "discount_percent": str(o.discount_percent),
        "discount": str(o.discount),
        "total": str(o.total),
        "discount_authorised_by": o.discount_authorised_by,
        "note": o.note,
        "cancel_reason": o.cancel_reason,
        "placed_at": _iso(o.placed_at),
        "confirmed_at": _iso(o.confirmed_at),
        "shipped_at": _iso(o.shipped_at),
        "cancelled_at": _iso(o.cancelled_at),
        "version": o.version,
    }


def shipping_address(o: Order) -> dict[str, Any] | None:
    """The order's address as OrderPlaced carries it beside the snapshot (null when it has none)."""
    return addresses.payload(o.shipping_address)


def customer(row: Any) -> dict[str, Any]:
    return {"customer_id": str(row.id), "name": row.name, "email": row.email}


def product(row: Any) -> dict[str, Any]:
    return {"product_id": str(row.id), "name": row.name, "price": str(row.price), "sku": row.sku}
