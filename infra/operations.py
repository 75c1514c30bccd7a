"""Operations routes: projection status and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from infra.status import projection_status

router = APIRouter(tags=["operations"])


@router.get("/projections")
async def projections(request: Request) -> list[dict[str, Any]]:
    """Per projection: checkpoint, log head, lag in events and in seconds (age of the oldest unapplied event)."""
    rows = await projection_status(request.app.state.write_engine, request.app.state.projections)
    return [row.as_dict() for row in rows]


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
