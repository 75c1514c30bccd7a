"""Example answers shown in the OpenAPI (``/docs``) for every reader, from a demo tenant."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

CONSISTENCY = {"position": 48210, "stale": False, "min_position": 48207}
ORDER = {
    "order_id": "5b0f6c1e-8a43-4a0e-9a51-0f2b8c1d9e77",
    "tenant_id": "acme",
    "version": 3,
    "customer_id": "0c6f1a7e-2d4b-4f0a-8c3e-5e9b7a1d2c44",
    "customer_name": "José Okafor",
    "customer_email": "jose@okafor.example",
    "status": "confirmed",
    "items": [
        {
            "line_no": 1,
            "product_id": "7d2e9b1c-4a3f-4e8d-b6c5-1a2b3c4d5e6f",
            "product_name": "Widget Pro 21",
            "quantity": 2,
            "unit_price": "19.90",
            "line_total": "39.80",
        }
    ],
    "item_count": 2,
    "subtotal": "39.80",
    "discount_percent": "10",
    "discount": "3.98",
    "total": "35.82",
    "discount_authorised_by": "Dana",
    "note": None,
    "cancel_reason": None,
    "placed_at": "2026-11-23T09:14:03.120000+00:00",
    "confirmed_at": "2026-11-23T09:20:41.007000+00:00",
    "shipped_at": None,
    "cancelled_at": None,
    "updated_at": "2026-11-23T09:20:41.007000+00:00",
    "consistency": CONSISTENCY,
}
CUSTOMER_ORDERS = {"orders": [ORDER], "next_cursor": ORDER["order_id"], "consistency": CONSISTENCY}
SEARCH = {
    "total": 1,
    "page": 1,
    "page_size": 20,
    "next_cursor": None,
    "consistency": CONSISTENCY,
    "hits": [
        {
            "order_id": ORDER["order_id"],
            "customer_id": ORDER["customer_id"],
            "customer_name": "José Okafor",
            "customer_email": "jose@okafor.example",
            "status": "confirmed",
            "total": "35.82",
            "placed_at": ORDER["placed_at"],
            "products": ["Widget Pro 21"],
            "highlights": {"items.product_name": ["<em>Widget</em> Pro 21"]},
        }
    ],
    "facets": {
        "status": [{"key": "confirmed", "count": 1}],
        "total_histogram": [{"key": "0.0", "count": 1}],
        "top_products": [{"key": "Widget Pro 21", "count": 1}],
    },
}
SUGGESTIONS = {"suggestions": ["Widget Lite 15", "Widget Plus 8", "Widget Pro 21"], "consistency": CONSISTENCY}
REVENUE = {
    "granularity": "day",
    "consistency": CONSISTENCY,
    "rows": [
        {"period": "2026-11-22", "orders": 212, "revenue": "28644.10"},
        {"period": "2026-11-23", "orders": 187, "revenue": "25190.42"},
    ],
}
TOP_PRODUCTS = {
    "consistency": CONSISTENCY,
    "rows": [
        {
            "product_id": "7d2e9b1c-4a3f-4e8d-b6c5-1a2b3c4d5e6f",
            "name": "Widget Pro 21",
            "quantity": 420,
            "revenue": "8358.00",
        }
    ],
}
SUMMARY = {
    "orders": 1700,
    "cancelled": 226,
    "cancellation_rate": 0.1329,
    "revenue": "212092.41",
    "average_order_value": "143.89",
    "discounted_orders": 105,
    "discount_total": "1105.66",
    "discount_share_of_subtotal": 0.0052,
    "consistency": CONSISTENCY,
}
BY_HOUR = {
    "consistency": CONSISTENCY,
    "rows": [{"hour": 9, "orders": 88, "revenue": "11920.30"}, {"hour": 10, "orders": 102, "revenue": "14001.75"}],
}
SQL = {
    "columns": ["status", "orders", "revenue"],
    "consistency": CONSISTENCY,
    "rows": [["shipped", 648, "511863.75"], ["cancelled", 226, "169411.07"]],
}
DASHBOARD = {
    "customer_id": ORDER["customer_id"],
    "name": "José Okafor",
    "email": "jose@okafor.example",
    "orders": {"total": 19, "pending": 0, "confirmed": 4, "shipped": 8, "cancelled": 7},
    "lifetime_value": "11303.32",
    "average_order_value": "627.96",
    "last_order_at": ORDER["placed_at"],
    "spend_by_month": [
        {"month": "2026-10", "orders": 0, "spend": "0"},
        {"month": "2026-11", "orders": 12, "spend": "11303.32"},
    ],
    "top_products": [
        {
            "product_id": "7d2e9b1c-4a3f-4e8d-b6c5-1a2b3c4d5e6f",
            "name": "Widget Pro 21",
            "quantity": 14,
            "revenue": "278.60",
        }
    ],
    "last_order": {
        "order_id": ORDER["order_id"],
        "status": "confirmed",
        "total": "35.82",
        "placed_at": ORDER["placed_at"],
    },
    "consistency": CONSISTENCY,
}
TOP_CUSTOMERS = {
    "by": "lifetime_value",
    "consistency": CONSISTENCY,
    "customers": [
        {
            "customer_id": ORDER["customer_id"],
            "name": "José Okafor",
            "email": "jose@okafor.example",
            "orders": 19,
            "lifetime_value": "11303.32",
        }
    ],
}


def example(value: dict[str, Any]) -> ConfigDict:
    """A response model's config showing ``value`` as its example."""
    return ConfigDict(json_schema_extra={"examples": [value]})
