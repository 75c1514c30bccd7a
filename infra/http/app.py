"""The HTTP application: the command API, the readers and the operations routes, one error model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra import bootstrap, telemetry
from infra.console import history
from infra.console import routes as console_routes
from infra.http import openapi, operations
from infra.http.auth import Authenticator, requires
from infra.http.error_body import error_body
from infra.http.middleware.body_limit import BodyLimit
from infra.http.middleware.to_owner import Deadlines, ToOwner
from infra.settings import Settings
from projections.stores import registry
from readers import customer_dashboards, order_analytics, order_search, order_summaries, shipping_dashboard
from readers.analytics_sql import AnalystSql, Limits
from readers.consistency import ReadWait
from workers.versions import LIVE
from write import api as command_api
from write.api_keys import OPERATOR
from write.bus import CommandBus
from write.errors import PrismError, StoreUnavailable

Hook = Callable[[FastAPI], Awaitable[None]]
log = logging.getLogger("prism.api")
#: Every reader: its router, the store its routes read (a failure there is that store's, translated by its
#: adapter) and the scope a credential needs. A new reader is one line here.
READERS: tuple[tuple[APIRouter, str, str], ...] = (
    (order_summaries.router, "redis", "read"),
    (order_search.router, "elasticsearch", "read"),
    (customer_dashboards.router, "dashboards", "read"),
    (order_analytics.router, "clickhouse", "analytics"),
    (shipping_dashboard.router, "dashboards", "read"),
)
#: Each reader route's store, by its endpoint.
READ_STORES: dict[Any, str] = {
    route.endpoint: store for router, store, _ in READERS for route in router.routes if isinstance(route, APIRoute)
}


def owner_deadlines(settings: Settings) -> Deadlines:
    """How long an API process waits for the embedded engine's owner: a reader's wait for ``min_position`` and its
    store deadline; an analyst's query its own time limit and queue on top; the operations that sweep every store
    (status, audit) as long as their own store calls take."""
    reader = settings.read_wait_seconds + settings.store_timeout_seconds  # a bounded wait for min_position, then
    analyst = settings.sql_max_seconds + settings.sql_queue_seconds + reader  # its query
    return Deadlines(
        reader,
        {"/analytics/sql": analyst, "/audit": None, "/audit/repair": None, "/projections": None},
    )


def _prism_error(request: Request, exc: Exception) -> JSONResponse:
    """Every Prism error, answered with its own status, code and headers in the common body."""
    assert isinstance(exc, PrismError)
    if isinstance(exc, StoreUnavailable):  # an expected outage: one line, no traceback
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    elif exc.http_status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message, exc_info=exc)
    return JSONResponse(
        error_body(exc.http_status, exc.code, exc.message, exc.field), status_code=exc.http_status, headers=exc.headers
    )


def _store_failure(request: Request, exc: Exception) -> JSONResponse:
    """A driver's failure that reached the edge: its store's adapter says what it means (the route's store for a
    reader), else it is a 500."""
    route = request.scope.get("route")
    translated = registry.translate(exc, READ_STORES.get(getattr(route, "endpoint", None)))
    if translated is None:
        return _unexpected(request, exc)
    return _prism_error(request, translated)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for it alone
    first = exc.errors()[0]
    where = [str(part) for part in first["loc"] if part not in ("body", "query", "path", "header")]
    field = ".".join(where) or None
    message = f"{field}: {first['msg']}" if field else first["msg"]
    return JSONResponse(error_body(422, "invalid", message, field), status_code=422)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """What the framework itself refuses (a body it cannot parse, an unknown path or method), in the common body."""
    assert isinstance(exc, StarletteHTTPException)  # registered for it alone
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(exc.status_code, code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body(500, "internal", "an unexpected error occurred; it has been logged"), status_code=500
    )


def create_app(settings: Settings, on_start: Hook | None = None, on_stop: Hook | None = None) -> FastAPI:
    """One app for commands and readers; ``on_start``/``on_stop`` let ``serve`` add the relay and workers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.write_engine = bootstrap.write_engine(settings)
        app.state.bus = CommandBus(app.state.write_engine)
        app.state.stores = await bootstrap.open_stores(settings)
        app.state.settings = settings
        app.state.read_wait = ReadWait(
            settings.read_wait_seconds,
            bootstrap.ask_to_apply(app.state.write_engine),
            bootstrap.ServedLayout(app.state.write_engine).partition_of,
        )
        app.state.store_timeout_seconds = settings.store_timeout_seconds
        app.state.authenticator = Authenticator(app.state.write_engine, settings)
        if settings.operator_token:
            log.warning(
                "PRISM_OPERATOR_TOKEN acts as an operator key for this release only; issue one with "
                "`prism keys create --scopes operator` instead"
            )
        live = await bootstrap.active_projections(app.state.write_engine, app.state.stores, (LIVE,))
        for projection in live.values():  # readers need the served storage and its pointers
            await projection.setup()
        app.state.analyst_sql = (
            None
            if app.state.stores.clickhouse is None
            else AnalystSql(app.state.stores, settings.clickhouse_url, str(settings.chdb_path), Limits.of(settings))
        )
        if on_start:
            await on_start(app)
        # A process that hands the embedded engine's reads to its owner cannot read every store: it only publishes
        # its host's processes, and the owner (or any other process) samples.
        console = history.sampling(
            app.state.write_engine, app.state.stores, settings, samples_here=not settings.clickhouse_owner_socket
        )
        try:
            async with console:
                yield
        finally:
            if on_stop:
                await on_stop(app)
            if app.state.analyst_sql is not None:
                app.state.analyst_sql.close()
            await bootstrap.close_stores(app.state.stores)
            await app.state.write_engine.dispose()

    app = FastAPI(
        title="Prism",
        version="0.1.0",
        lifespan=lifespan,
        description="Commands on one write model; reads from projections kept in sync from its log.",
    )
    app.add_exception_handler(PrismError, _prism_error)
    for driver_error in registry.driver_errors(bootstrap.store_names(settings)):
        app.add_exception_handler(driver_error, _store_failure)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    probes = operations.probes(settings.open_routes)
    if settings.clickhouse_owner_socket:  # the engine's owner answers what reads it (added first: runs inside)
        app.add_middleware(
            ToOwner,
            socket_path=settings.clickhouse_owner_socket,
            routers=(order_analytics.router, operations.router, probes),
            deadlines=owner_deadlines(settings),
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Each router's scope is decided here, once: its routes then take the tenant from the credential.
    for router, scope in (
        (command_api.tenants_router, OPERATOR),
        (command_api.router, "commands"),
        *((reader, scope) for reader, _, scope in READERS),
    ):
        app.include_router(router, dependencies=[Security(requires(scope))])
    for router in (operations.router, probes, operations.liveness(settings.open_routes), console_routes.router):
        app.include_router(router)
    app.openapi = lambda: openapi.schema(app)  # type: ignore[method-assign]  # the shared errors and links
    telemetry.instrument_app(app)
    return app
