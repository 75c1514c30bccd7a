"""The operator console over HTTP: nothing but its sign-in page without an operator, a session no other site can
use, and its data route answering from the sampled history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute

from infra.console import routes as console_routes
from infra.console.session import COOKIE, CSRF_HEADER
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, eventually
from tests.e2e.conftest import headers_of
from write import api_keys

CSRF = re.compile(r'<meta name="prism-csrf" content="([0-9a-f]{64})">')


def console_routes_of() -> list[tuple[str, str]]:
    """Every (method, path) of the console's router, with a sample value for each path parameter."""
    found = []
    for route in console_routes.router.routes:
        if isinstance(route, APIRoute):
            path = route.path.replace("{name:path}", "console.js").replace("{version}", "order_summaries")
            found += [(method, path) for method in sorted(route.methods)]
    return found


async def sign_in(http, credential: str):
    return await http.post(
        "/console/session", content=f"key={credential}", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )


async def signed_in(http) -> tuple[dict[str, str], str]:
    """A session's cookie header and its CSRF token, from the console page itself."""
    answer = await sign_in(http, OPERATOR["Authorization"].removeprefix("Bearer "))
    assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text
    cookie = {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}"}
    page = await http.get("/console", headers=cookie)
    return cookie, CSRF.search(page.text).group(1)


async def test_no_console_route_answers_without_an_operator(http, api_tenant):
    walked = console_routes_of()
    assert ("GET", "/console/api/overview") in walked and ("POST", "/console/session/end") in walked
    assert ("GET", "/console/api/partitions/order_summaries") in walked
    assert not [path for _, path in walked if "{" in path], walked  # every parameter given a value
    tenant_key = headers_of(api_tenant)
    for method, path in walked:
        for credentials in ({}, tenant_key, {"Cookie": f"{COOKIE}=prk_forged_key"}):
            answer = await http.request(method, path, headers=credentials)
            if (method, path) == ("GET", "/console"):  # the sign-in page: a form, and nothing else
                assert answer.status_code == 200 and 'action="/console/session"' in answer.text
                assert "prism-csrf" not in answer.text and "/console/assets/" not in answer.text
            else:
                assert answer.status_code in (401, 403), (method, path, credentials, answer.status_code)
                assert COOKIE not in answer.cookies
    assert len(walked) >= 5


async def test_only_an_operator_signs_in_and_the_key_stays_out_of_urls(http, api_tenant):
    page = (await http.get("/console")).text
    assert '<form method="post" action="/console/session">' in page and 'type="password"' in page
    refused = await sign_in(http, headers_of(api_tenant)["Authorization"].removeprefix("Bearer "))
    assert refused.status_code == 401 and "operator scope" in refused.text and COOKIE not in refused.cookies
    unknown = await sign_in(http, "prk_nobody_0000")
    assert unknown.status_code == 401 and "unknown API key" in unknown.text
    elsewhere = await http.post(
        "/console/session",
        content=f"key={OPERATOR['Authorization'].removeprefix('Bearer ')}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403 and COOKIE not in elsewhere.cookies

    answer = await sign_in(http, OPERATOR["Authorization"].removeprefix("Bearer "))
    set_cookie = answer.headers["set-cookie"].lower()
    assert answer.status_code == 303 and "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert OPERATOR["Authorization"].removeprefix("Bearer ") not in answer.headers["set-cookie"]
    again = await sign_in(http, answer.cookies[COOKIE])  # a session's key opens no other session
    assert again.status_code == 401 and "does not sign in again" in again.text


async def test_a_session_ends_with_the_key_it_was_opened_with(http, write_engine):
    _, short = await api_keys.issue(write_engine, None, ["operator"], "ops, an hour", timedelta(hours=1))
    answer = await sign_in(http, short)
    assert answer.status_code == 303
    assert 3500 <= int(re.search(r"max-age=(\d+)", answer.headers["set-cookie"], re.I).group(1)) <= 3600
    session = await api_keys.lookup(write_engine, answer.cookies[COOKIE])
    assert session is not None and session.expires_at <= datetime.now(UTC) + timedelta(hours=1)

    cookie = {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}"}
    assert (await http.get("/console", headers=cookie)).text.count("prism-csrf") == 1  # the console itself
    await api_keys.revoke(write_engine, short.removeprefix("prk_").split("_", 1)[0])
    revoked = await api_keys.lookup(write_engine, answer.cookies[COOKIE])
    assert revoked is not None and revoked.revoked_at is not None

    async def signed_out() -> bool:
        return "prism-csrf" not in (await http.get("/console", headers=cookie)).text  # the sign-in page again

    await eventually(signed_out, what="the session ended with its key")


async def test_a_session_needs_its_csrf_token_and_ends_at_sign_out(http, write_engine):
    cookie, csrf = await signed_in(http)
    page = await http.get("/console", headers=cookie)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert (await http.get("/console/assets/console.js", headers=cookie)).status_code == 200

    assert (await http.get("/console/api/overview", headers=cookie)).status_code == 403  # the cookie alone
    wrong = {**cookie, CSRF_HEADER: "0" * 64}
    assert (await http.get("/console/api/overview", headers=wrong)).status_code == 403
    with_token = {**cookie, CSRF_HEADER: csrf}
    assert (await http.get("/console/api/overview", headers=with_token)).status_code == 200
    assert (await http.get("/deadletters", headers=with_token)).status_code == 200  # the operations API itself
    replayed = await http.post(
        "/projections/customer_dashboards/rollback", headers={**with_token, "Origin": "https://evil.example"}
    )
    assert replayed.status_code == 403  # another site's request, even with the token, changes nothing

    ended = await http.post("/console/session/end", headers=with_token)
    assert ended.status_code == 204
    ended_key = await api_keys.lookup(write_engine, cookie["Cookie"].split("=", 1)[1])
    assert ended_key is not None and ended_key.revoked_at is not None

    async def refused() -> bool:
        return (await http.get("/console/api/overview", headers=with_token)).status_code == 401

    await eventually(refused, what="the ended session refused")


@pytest.mark.parametrize("bearer", [True, False])
async def test_the_data_route_answers_every_projection_from_the_sampled_history(http, api_tenant, bearer):
    if bearer:
        headers = OPERATOR
    else:
        cookie, csrf = await signed_in(http)
        headers = {**cookie, CSRF_HEADER: csrf}
    seen: dict = {}

    async def sampled() -> bool:
        seen.update((await http.get("/console/api/overview", headers=headers)).json())
        status = seen.get("status") or {}
        names = {row["projection"] for row in status.get("projections", [])}
        tenants = {t["tenant"] for t in status.get("tenants", [])}
        return (
            set(PROJECTIONS) <= names
            and api_tenant in tenants
            and all(len(seen["series"].get(n, {"t": []})["t"]) >= 2 for n in PROJECTIONS)
        )

    await eventually(sampled, timeout=20, what="two samples of every projection")
    status = seen["status"]
    assert set(status["stores"]) >= {"redis", "elasticsearch", "dashboards", "clickhouse"}
    assert all(problem is None for problem in status["stores"].values())
    assert set(PROJECTIONS) <= set(seen["series"]) and seen["hosts"][0]["processes"]
