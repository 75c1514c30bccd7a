"""What every reader route takes: the caller's tenant, a read-your-writes position, the stores."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from projections.base import Stores

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

Tenant = Annotated[str, Header(alias="X-Tenant-ID", pattern=TENANT_PATTERN, description="The caller's tenant")]
MinPosition = Annotated[int | None, Query(ge=0, description="Wait until the projection has applied this log position")]


def _stores(request: Request) -> Stores:
    return request.app.state.stores


def _wait_seconds(request: Request) -> float:
    return request.app.state.read_wait_seconds


StoresDep = Annotated[Stores, Depends(_stores)]
WaitSeconds = Annotated[float, Depends(_wait_seconds)]
