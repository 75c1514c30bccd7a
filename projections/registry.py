"""Every projection the workers run: one line per projection."""

from __future__ import annotations

from projections.customer_dashboards import CustomerDashboards
from projections.order_analytics import OrderAnalytics
from projections.order_search import OrderSearch
from projections.order_summaries import OrderSummaries

PROJECTIONS = {
    OrderSummaries.name: OrderSummaries,
    OrderSearch.name: OrderSearch,
    OrderAnalytics.name: OrderAnalytics,
    CustomerDashboards.name: CustomerDashboards,
}
