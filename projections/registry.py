"""Every projection the workers run: one line per projection."""

from __future__ import annotations

from projections.base import Projection
from projections.customer_dashboards import CustomerDashboards
from projections.order_analytics import OrderAnalytics
from projections.order_search import OrderSearch
from projections.order_summaries import OrderSummaries
from projections.shipping_dashboard import ShippingDashboard

PROJECTIONS: dict[str, type[Projection]] = {
    OrderSummaries.name: OrderSummaries,
    OrderSearch.name: OrderSearch,
    OrderAnalytics.name: OrderAnalytics,
    CustomerDashboards.name: CustomerDashboards,
    ShippingDashboard.name: ShippingDashboard,
}


def writing_to(store: str) -> list[str]:
    """The projections that write through one of the ``Stores`` clients."""
    return [name for name, cls in PROJECTIONS.items() if cls.store == store]
