"""What every reader route takes: the caller's tenant, a read-your-writes position, the stores."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BeforeValidator

from projections.stores.clients import Stores
from readers.consistency import ReadWait


async def _tenant(request: Request) -> str:
    """The caller's tenant, as the credential that the application checked before this route proved it."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # fail closed: a route reached without the credential check is a wiring error
        raise RuntimeError("reader route reached without an authenticated tenant")
    return tenant


Tenant = Annotated[str, Depends(_tenant)]


def _iso_date(value: object) -> object:
    """Dates as the schema says (``format: date``): pydantic alone would also take a number as a Unix time."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
#: Log positions are Postgres bigints: a larger one can name no position (and no JSON answer could echo it).
MAX_POSITION = 2**63 - 1
MinPosition = Annotated[
    int | None,
    Query(ge=0, le=MAX_POSITION, description="Wait until the projection has applied this log position"),
]


async def _stores(request: Request) -> Stores:
    return request.app.state.stores


async def _read_wait(request: Request) -> ReadWait:
    return request.app.state.read_wait


StoresDep = Annotated[Stores, Depends(_stores)]
Wait = Annotated[ReadWait, Depends(_read_wait)]
