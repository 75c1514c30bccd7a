"""The one shape of every error answer, shared by the exception handlers and the ASGI middleware."""

from __future__ import annotations

from typing import Any


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"status": status, "code": code, "message": message, "field": field}
