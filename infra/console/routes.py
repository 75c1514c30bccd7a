"""The operator console's routes: its sign-in, its page and files, and its data routes.

Everything but the sign-in page needs an operator: the page and its files the console's cookie, the data routes the
cookie with its CSRF token or a bearer credential. The console's actions are not here: its script calls the
operations routes (``infra.http.operations``) that ``prism`` and any other client call.
"""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime, timedelta
from importlib import resources
from string import Template
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response, Security
from fastapi.responses import HTMLResponse, RedirectResponse

from infra.console import history, session
from infra.http.auth import AuthError, Forbidden, Principal, Unauthenticated, console_session, requires
from write.api_keys import OPERATOR

#: The console's files, shipped in the package (no build step): name → content type.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
}
_STATIC = resources.files("infra.console") / "static"
_FILES = {name: (_STATIC / name).read_bytes() for name in ASSETS}
_SIGN_IN = Template((_STATIC / "sign-in.html").read_text())
_PAGE = Template((_STATIC / "console.html").read_text())
#: The sign-in page's only style, inline and allowed by its hash: the page loads nothing before a sign-in.
_SIGN_IN_STYLE = (_STATIC / "sign-in.css").read_text()
_STYLE_HASH = base64.b64encode(hashlib.sha256(_SIGN_IN_STYLE.encode()).digest()).decode()
#: Nothing but the console's own files, no inline script, no framing, forms only to the console itself.
CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' 'sha256-{_STYLE_HASH}'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make a form's Origin "null"
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

router = APIRouter(prefix="/console", include_in_schema=False)


async def _operator_page(request: Request) -> Principal:
    """A page or file of the console: the cookie of an operator's session (a navigation sends no header)."""
    found = await console_session(request, csrf=False)
    if OPERATOR not in found.scopes:
        raise Forbidden("the console is for operators")
    return found


@router.get("")
async def console(request: Request) -> HTMLResponse:
    """The console to a signed-in operator; the sign-in page to anyone else."""
    try:
        await _operator_page(request)
    except AuthError:
        return _sign_in_page()
    key = session.session_key(request)
    assert key is not None  # the session above was proved by it
    body = _PAGE.substitute(
        csrf=html.escape(session.csrf_token(key)), host=html.escape(request.app.state.settings.host_name)
    )
    return HTMLResponse(body, headers=HEADERS)


@router.post("/session")
async def sign_in(request: Request) -> Response:
    """Sign in with an operator credential sent in the form's body (never in the URL): a session cookie, then the
    console. A credential that is not an operator's answers the sign-in page again with what was wrong, as a 401."""
    settings = request.app.state.settings
    if not session.same_origin(request, settings.console_origins):
        return _sign_in_page("this sign-in came from another site", 403)
    form = parse_qs((await request.body()).decode(errors="replace"))
    credential = (form.get("key") or [""])[0].strip()
    if not credential:
        return _sign_in_page("enter an operator key", 401)
    try:
        found = await request.app.state.authenticator.principal(credential)
    except AuthError as error:
        return _sign_in_page(error.message, 401)
    if OPERATOR not in found.scopes:
        return _sign_in_page("this key is not an operator's: the console needs the operator scope", 401)
    engine = request.app.state.write_engine
    if await session.is_session_key(engine, credential):
        return _sign_in_page("a console session's own key does not sign in again", 401)
    lasts = timedelta(hours=settings.console_session_hours)
    if found.expires_at is not None:  # no session outlives the credential it was opened with
        lasts = min(lasts, found.expires_at - datetime.now(UTC))
    key = await session.open_session(engine, found.credential, lasts, found.key_id)
    response = RedirectResponse("/console", status_code=303, headers=HEADERS)
    session.set_cookie(response, request, key, lasts, settings.console_secure_cookie)
    return response


@router.post("/session/end", dependencies=[Security(requires(OPERATOR))])
async def sign_out(request: Request) -> Response:
    """End the session: its key is revoked and its cookie cleared."""
    key = session.session_key(request)
    if key is None:
        raise Unauthenticated("signing out needs the console's session")
    await session.close_session(request.app.state.write_engine, key)
    response = Response(status_code=204, headers=HEADERS)
    session.clear_cookie(response, request, request.app.state.settings.console_secure_cookie)
    return response


@router.get("/assets/{name:path}", dependencies=[Security(_operator_page)])
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(status_code=404, headers=HEADERS)
    return Response(_FILES[name], media_type=ASSETS[name], headers=HEADERS)


@router.get("/api/overview", dependencies=[Security(requires(OPERATOR))])
async def overview(request: Request) -> Response:
    """The latest sampled status, each host's processes and the last hour's lag series (see ``history``)."""
    state = request.app.state
    body = await _answers(state).answer(state.write_engine, state.settings)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/api/partitions/{version}", dependencies=[Security(requires(OPERATOR))])
async def partitions(request: Request, version: str) -> Response:
    """The last hour's lag of each partition of a version (its label: ``order_search@v2``), by the partition's label;
    none for a version that is not split, or not in the latest sample."""
    state = request.app.state
    body = await _answers(state).partitions(state.write_engine, state.settings, version)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _answers(state) -> history.Overview:
    """This process's data answers, with the series they keep between samples."""
    if not hasattr(state, "console_overview"):
        state.console_overview = history.Overview()
    return state.console_overview


def _sign_in_page(error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = _SIGN_IN.substitute(style=_SIGN_IN_STYLE, error=message)
    return HTMLResponse(body, status_code=status, headers=HEADERS)
