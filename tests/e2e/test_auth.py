"""Credentials: every data route needs one, the tenant comes from it, scopes bound what it may do."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.conftest import OPERATOR, eventually
from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import open_shop
from write import api_keys

#: Routes that answer without a credential (the defaults of PRISM_OPEN_ROUTES, and the docs).
OPEN = {"/health", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def _bearer(plain: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plain}"}


def _filled(path: str) -> str:
    """A concrete path for a route template: any id will do, the credential is checked first."""
    return path.replace("{name}", "order_search").replace("{dead_id}", "1").format_map(_AnyId())


class _AnyId(dict):
    def __missing__(self, key: str) -> str:
        return str(uuid.uuid4())


async def test_every_route_but_the_open_ones_answers_401_without_a_credential(http):
    paths = (await http.get("/openapi.json")).json()["paths"]
    checked = 0
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path in OPEN:
                assert "security" not in operation, (method, path)
                continue
            assert operation.get("security") == [{"bearer": []}], (method, path)
            for headers in ({}, _bearer("prk_000000000000_forged"), {"Authorization": "Basic YTpi"}):
                response = await http.request(method.upper(), _filled(path), headers=headers, json={})
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert response.json()["code"] == "unauthenticated" and response.json()["message"]
            checked += 1
    assert checked >= 30, checked  # every command, reader and operations route was asked


async def test_a_tenants_key_can_neither_read_nor_change_another_tenants_orders(http, api_tenant, write_engine):
    mine, _made = await open_shop(http, api_tenant)
    theirs, made_there = await open_shop(http, await _other(http, api_tenant))
    order, position = made_there["order"]["id"], made_there["order"]["position"]
    for path in (f"/orders/{order}", f"/customers/{made_there['customer']['id']}/dashboard"):
        read = await http.get(path, headers=mine.headers, params={"min_position": position})
        assert read.status_code == 404, (path, read.text)
    for action, body in (
        ("confirm", {"expected_version": 1}),
        ("cancel", {"expected_version": 1, "reason": "x"}),
        ("discount", {"expected_version": 1, "percent": "50", "authorised_by": "me"}),
    ):
        changed = await http.post(f"/orders/{order}/{action}", json=body, headers=mine.headers)
        assert changed.status_code == 404, (action, changed.text)
    renamed = await http.post(
        f"/products/{made_there['product']['id']}/name",
        json={"name": "Stolen", "expected_version": 1},
        headers=mine.headers,
    )
    assert renamed.status_code == 404
    async with write_engine.connect() as conn:
        status = (await conn.execute(text("SELECT status, version FROM orders WHERE id = :id"), {"id": order})).one()
        name = (
            await conn.execute(text("SELECT name FROM products WHERE id = :id"), {"id": made_there["product"]["id"]})
        ).scalar()
    assert tuple(status) == ("pending", 1) and name == "Gizmo Deluxe"
    assert theirs.tenant != mine.tenant


async def test_the_tenant_header_is_only_a_consistency_check(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    other = await _other(http, api_tenant)
    path = f"/orders/{made['order']['id']}"
    params = {"min_position": made["order"]["position"]}
    same = await http.get(path, headers=shop.headers | {"X-Tenant-ID": api_tenant}, params=params)
    assert same.status_code == 200
    mismatch = await http.get(path, headers=shop.headers | {"X-Tenant-ID": other}, params=params)
    assert (mismatch.status_code, mismatch.json()["code"]) == (403, "forbidden")
    twice = await http.get(
        path,
        headers=[("Authorization", shop.headers["Authorization"]), ("X-Tenant-ID", api_tenant), ("X-Tenant-ID", other)],
        params=params,
    )
    assert (twice.status_code, twice.json()["field"]) == (400, "X-Tenant-ID")
    alone = await http.get(path, headers={"X-Tenant-ID": api_tenant}, params=params)
    assert alone.status_code == 401


async def test_scopes_bound_what_a_key_may_do(http, api_tenant, write_engine):
    shop, made = await open_shop(http, api_tenant)
    reader = _bearer((await api_keys.issue(write_engine, api_tenant, ["read"]))[1])
    writer = _bearer((await api_keys.issue(write_engine, api_tenant, ["commands"]))[1])
    order_body = {
        "customer_id": made["customer"]["id"],
        "items": [{"product_id": made["product"]["id"], "quantity": 1}],
    }
    expectations = [
        ("POST", "/orders", reader, order_body, 403),
        ("POST", "/orders", writer, order_body, 201),
        ("GET", f"/orders/{made['order']['id']}", writer, None, 403),
        ("GET", f"/orders/{made['order']['id']}", reader, None, 200),
        ("GET", "/analytics/summary", reader, None, 403),
        ("GET", "/analytics/summary", shop.headers, None, 200),
        ("GET", "/audit", shop.headers, None, 403),
        ("GET", "/deadletters", shop.headers, None, 403),
        ("POST", "/projections/order_search/rebuild", shop.headers, None, 403),
        ("POST", "/tenants", shop.headers, {"id": f"{api_tenant}-new", "name": "Mine now"}, 403),
        ("GET", f"/orders/{made['order']['id']}", OPERATOR, None, 403),
        ("POST", "/orders", OPERATOR, order_body, 403),
        ("GET", "/projections", reader, None, 200),
        ("GET", "/positions", writer, None, 200),
    ]
    for method, path, headers, body, status in expectations:
        response = await http.request(
            method,
            path,
            headers=headers,
            json=body,
            params={"min_position": made["order"]["position"]} if method == "GET" else None,
        )
        assert response.status_code == status, (method, path, headers, response.text)
        if status == 403:
            assert response.json()["code"] == "forbidden" and response.json()["message"], response.text


async def test_registering_a_tenant_is_for_operators_and_issues_its_first_key(http, tenant_id, write_engine):
    operator = _bearer((await api_keys.issue(write_engine, None, ["operator"], "ops"))[1])
    registered = await http.post("/tenants", json={"id": tenant_id, "name": "New"}, headers=operator)
    assert registered.status_code == 201, registered.text
    issued = registered.json()["key"]
    assert issued["key"].startswith("prk_") and issued["tenant"] == tenant_id
    assert issued["scopes"] == ["commands", "read", "analytics"]
    created = await http.post(
        "/customers", json={"name": "Ann", "email": "ann@new.example"}, headers=_bearer(issued["key"])
    )
    assert created.status_code == 201, created.text
    again = await http.post("/tenants", json={"id": tenant_id, "name": "New"}, headers=OPERATOR)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    without_key = await http.post(
        "/tenants", json={"id": f"{tenant_id}-b", "name": "B", "issue_key": False}, headers=OPERATOR
    )
    assert without_key.status_code == 201 and without_key.json()["key"] is None


async def test_keys_are_stored_as_hashes_and_stop_working_when_revoked_or_expired(http, api_tenant, write_engine):
    _shop, made = await open_shop(http, api_tenant)
    key, plain = await api_keys.issue(write_engine, api_tenant, ["read"], "to revoke")
    async with write_engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key.id})).mappings().one()
    assert bytes(row["secret_hash"]) == hashlib.sha256(plain.encode()).digest()
    assert not any(plain in str(value) or plain.split("_")[-1] in str(value) for value in row.values())
    path = f"/orders/{made['order']['id']}"
    read = await http.get(path, headers=_bearer(plain), params={"min_position": made["order"]["position"]})
    assert read.status_code == 200
    await api_keys.revoke(write_engine, key.id)

    async def refused() -> bool:
        response = await http.get(path, headers=_bearer(plain))
        return response.status_code == 401 and "revoked" in response.json()["message"]

    await eventually(refused, timeout=10, what="a revoked key refused")
    _, expired = await api_keys.issue(write_engine, api_tenant, ["read"], expires_in=timedelta(seconds=-1))
    answer = await http.get(path, headers=_bearer(expired))
    assert answer.status_code == 401 and "expired" in answer.json()["message"]


def test_the_keys_command_creates_lists_and_revokes(fresh_services, tenant):
    env = os.environ | {"PRISM_WRITE_DATABASE_URL": fresh_services.write_database_url}

    def prism(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "infra.cli", "keys", *args], env=env, capture_output=True, text=True, timeout=60
        )

    created = prism("create", "--tenant", tenant, "--scopes", "read,analytics", "--name", "dash", "--expires", "30")
    assert created.returncode == 0, created.stderr
    plain = created.stdout.strip()
    assert plain.startswith("prk_") and len(plain) > 40
    key_id = plain.split("_")[1]
    listed = prism("list", "--tenant", tenant)
    assert key_id in listed.stdout and "read,analytics" in listed.stdout and plain not in listed.stdout
    assert prism("revoke", key_id).returncode == 0
    assert (
        "-"
        not in next(
            line for line in prism("list", "--tenant", tenant).stdout.splitlines() if line.startswith(key_id)
        ).split()[-1]
    )
    refused = prism("create", "--tenant", tenant, "--scopes", "operator")
    assert refused.returncode == 1 and "operator" in refused.stderr


@pytest.mark.parametrize("env", ["prod", "staging", ""])
def test_an_unknown_environment_refuses_to_start(env):
    from infra.settings import Settings

    with pytest.raises(ValueError, match=r"development|test|production"):
        Settings(env=env)


def test_outside_development_the_development_password_is_refused():
    from infra.settings import Settings

    for env in ("test", "production"):
        with pytest.raises(ValueError, match=r"development database password"):
            Settings(env=env)
    assert (
        Settings(
            env="production",
            write_database_url="postgresql+asyncpg://prism:s3cret@db/w",
            dashboards_database_url="postgresql+asyncpg://prism:s3cret@db/d",
        ).env
        == "production"
    )


async def _other(http, tenant: str) -> str:
    other = f"{tenant}-o"
    await open_tenant(http, other, "Other")
    return other
