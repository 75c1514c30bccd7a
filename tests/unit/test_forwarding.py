"""Which requests an API process hands to the ClickHouse owner: exactly the routes that read the engine."""

from __future__ import annotations

import pytest

from infra.http.app import create_app
from infra.http.middleware.to_owner import ToOwner
from infra.settings import Settings


@pytest.fixture(scope="module")
def to_owner() -> ToOwner:
    app = create_app(Settings(clickhouse_owner_socket="/nonexistent/owner.sock"))
    stack = app.build_middleware_stack()
    while not isinstance(stack, ToOwner):
        stack = stack.app
    return stack


def scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"", "headers": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/analytics/top-products"),
        ("POST", "/analytics/sql"),
        ("GET", "/projections"),
        ("POST", "/projections/order_search/rebuild"),
        ("GET", "/positions"),
        ("GET", "/audit"),
        ("POST", "/audit/repair"),
        ("GET", "/deadletters"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("DELETE", "/analytics/sql"),  # a wrong method still goes: the owner answers its 405
    ],
)
def test_the_routes_that_read_the_engine_go_to_its_owner(to_owner, method, path):
    assert to_owner.owned(scope(method, path))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/orders"),
        ("GET", "/orders/o-1"),
        ("GET", "/search"),
        ("GET", "/customers/c-1/dashboard"),
        ("GET", "/health"),
        ("POST", "/tenants"),
        ("GET", "/analyticsx"),
        ("GET", "/nowhere"),
    ],
)
def test_every_other_route_is_answered_by_the_api_process(to_owner, method, path):
    assert not to_owner.owned(scope(method, path))
