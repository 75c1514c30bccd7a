"""Operations routes: projection status, metrics, health, readiness and dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from infra.bootstrap import active_projections, partitions_of
from infra.http.auth import requires
from infra.ops.metrics import exposition
from infra.ops.rebuilds import known
from infra.ops.status import applied_through, projection_status
from projections.stores.adapter import describe
from projections.stores.postgres import WRITE_DATABASE
from projections.stores.registry import ping_all
from workers import dead_letters, versions
from write import event_log
from write.api_keys import OPERATOR, TENANT_SCOPES

router = APIRouter(tags=["operations"])

#: Audit, dead letters and version changes span every tenant: operators only.
Operator = [Security(requires(OPERATOR))]
#: Status and positions say nothing of any tenant's data (commands answer positions too): any valid credential.
Anyone = [Security(requires(OPERATOR, *TENANT_SCOPES))]


@router.get("/projections", dependencies=Anyone)
async def projections(request: Request) -> list[dict[str, Any]]:
    """Per projection: state, checkpoint, head, lag in events and seconds, dead letters, last batch."""
    return [row.as_dict() for row in await _status(request)]


@router.post("/projections/{name}/rebuild", dependencies=Operator, status_code=202)
async def rebuild(name: str, request: Request) -> dict[str, Any]:
    """Build a new version beside the live one; readers switch to it once it has caught up."""
    settings = request.app.state.settings
    return await _version_change(
        request, name, lambda engine, n: versions.start_rebuild(engine, n, partitions_of(settings, n))
    )


@router.post("/projections/{name}/rollback", dependencies=Operator, status_code=202)
async def rollback(name: str, request: Request) -> dict[str, Any]:
    """Switch readers back to the previous version, once it has caught up again."""
    return await _version_change(request, name, versions.start_rollback)


@router.post("/projections/{name}/drop-previous", dependencies=Operator, status_code=202)
async def drop_previous(name: str, request: Request) -> dict[str, Any]:
    """Have the workers drop the previous version; no rollback after this."""
    return await _version_change(request, name, versions.retire_previous)


async def _version_change(request: Request, name: str, change) -> dict[str, Any]:
    """``UnknownProjection`` (404) and ``VersionError`` (409) carry their own HTTP meaning."""
    version = await change(request.app.state.write_engine, known([name])[0])
    return {"projection": name, "version": version}


async def metrics(request: Request) -> Response:
    """The projection status for Prometheus."""
    return Response(exposition(await _status(request)), media_type=CONTENT_TYPE_LATEST)


async def _status(request: Request):
    state = request.app.state
    shown = await active_projections(
        state.write_engine, state.stores, (versions.LIVE, versions.NEXT, versions.PREVIOUS)
    )
    return await projection_status(state.write_engine, shown)


@router.get("/positions", dependencies=Anyone)
async def positions(request: Request) -> dict[str, Any]:
    """The log's head and each live version's checkpoint, read from the stores at once: a cheap lag probe. A version
    split into partitions has the lowest of theirs, and each under ``partitions``; a partition's is as far as its own
    tenants go (one with no event past its checkpoint is at the head)."""
    state = request.app.state
    live = await active_projections(state.write_engine, state.stores, (versions.LIVE,))
    read = await asyncio.gather(*(p.checkpoint() for p in live.values()))
    async with state.write_engine.connect() as conn:
        head = await event_log.head(conn)
        split = [(p.partition, c) for p, c in zip(live.values(), read, strict=True) if not p.partition.whole]
        through = iter(await applied_through(conn, split, head))
    checkpoints: dict[str, int] = {}
    parts: dict[str, dict[str, int]] = {}
    for projection, checkpoint in zip(live.values(), read, strict=True):
        if not projection.partition.whole:
            checkpoint = next(through)
            parts.setdefault(projection.name, {})[str(projection.partition)] = checkpoint
        checkpoints[projection.name] = min(checkpoint, checkpoints.get(projection.name, checkpoint))
    return {"head": head, "checkpoints": checkpoints, "partitions": parts}


async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def ready(request: Request) -> JSONResponse:
    """Every store answers within its deadline; 503 (with Retry-After) names the ones that do not."""
    state = request.app.state
    deadline = state.store_timeout_seconds
    write, stores = await asyncio.gather(
        asyncio.gather(asyncio.wait_for(WRITE_DATABASE.ping(state.write_engine), deadline), return_exceptions=True),
        ping_all(state.stores, deadline),
    )
    results = {"write_database": write[0], **stores}
    failed = {name: describe(error) for name, error in results.items() if error is not None}
    body = {"status": "ready" if not failed else "unavailable", "failed": failed}
    if not failed:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def probes(open_routes: list[str]) -> APIRouter:
    """Readiness and metrics: open where ``open_routes`` says so, else for operators only."""
    return _open_where_asked(open_routes, ("/ready", ready, {}), ("/metrics", metrics, {"response_class": Response}))


def liveness(open_routes: list[str]) -> APIRouter:
    """Health: the answering process is up (it reads no store, so any process answers it)."""
    return _open_where_asked(open_routes, ("/health", health, {}))


def _open_where_asked(open_routes: list[str], *routes) -> APIRouter:
    probe_router = APIRouter(tags=["operations"])
    for path, endpoint, extra in routes:
        guard = [] if path in open_routes else Operator
        probe_router.add_api_route(path, endpoint, methods=["GET"], dependencies=guard, **extra)
    return probe_router


@router.get("/audit", dependencies=Operator)
async def audit_stores(request: Request, tenant: str | None = None) -> dict[str, Any]:
    """Drift of every store against the write model (what ``prism audit`` prints); meaningful at lag 0."""
    from infra.ops import audit

    state = request.app.state
    tenant_ids = [tenant] if tenant else await audit.tenants(state.write_engine)
    drift = await audit.audit(state.write_engine, state.stores, tenant_ids)
    return {"tenants": len(tenant_ids), "drift": [d.__dict__ for d in drift]}


@router.post("/audit/repair", dependencies=Operator)
async def repair_stores(request: Request, tenant: str | None = None) -> dict[str, Any]:
    """Audit, re-project every aggregate that drifted from its events, audit again (``prism audit --repair``)."""
    from infra.ops import audit

    state = request.app.state
    tenant_ids = [tenant] if tenant else await audit.tenants(state.write_engine)
    drift = await audit.audit(state.write_engine, state.stores, tenant_ids)
    repaired = 0
    if drift:
        live = await active_projections(state.write_engine, state.stores, (versions.LIVE,))
        repaired = await audit.repair(state.write_engine, {p.name: p for p in live.values()}, drift)
        drift = await audit.audit(state.write_engine, state.stores, tenant_ids)
    return {"tenants": len(tenant_ids), "repaired": repaired, "drift": [d.__dict__ for d in drift]}


@router.get("/deadletters", dependencies=Operator)
async def list_dead_letters(
    request: Request,
    projection: str | None = None,
    status: str | None = Query("parked", pattern="^(parked|retried|discarded)$"),
) -> list[dict]:
    found = await dead_letters.listing(request.app.state.write_engine, projection, status)
    return [d.as_dict() for d in found]


@router.post("/deadletters/{dead_id}/retry", dependencies=Operator)
async def retry_dead_letter(dead_id: int, request: Request) -> dict:
    return await _resolve(request, dead_id, dead_letters.retry)


@router.post("/deadletters/{dead_id}/discard", dependencies=Operator)
async def discard_dead_letter(dead_id: int, request: Request) -> dict:
    return await _resolve(request, dead_id, dead_letters.discard)


async def _resolve(request: Request, dead_id: int, action) -> dict:
    """``DeadLetterNotFound`` (404), ``DeadLetterError`` and ``ProjectionBusy`` (409) carry their HTTP meaning."""
    engine = request.app.state.write_engine
    letter = await action(engine, await active_projections(engine, request.app.state.stores), dead_id)
    return letter.as_dict()
