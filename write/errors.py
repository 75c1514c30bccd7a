"""The write side's errors: one root, a shallow tree, each with its HTTP meaning."""

from __future__ import annotations


class WriteError(Exception):
    """Root of every error a command can raise."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidCommand(WriteError):
    """Raised when a command breaks a business rule about its own values."""

    http_status = 422
    code = "invalid"


class NotFound(WriteError):
    """Raised when a command names a tenant, customer, product or order that the caller's tenant lacks."""

    http_status = 404
    code = "not_found"


class Conflict(WriteError):
    """Raised when a command cannot apply to the current state."""

    http_status = 409
    code = "conflict"


class VersionConflict(Conflict):
    """Raised when ``expected_version`` differs from the aggregate's version."""

    code = "version_conflict"


class IllegalTransition(Conflict):
    """Raised when an order cannot move from its status to the one asked."""

    code = "illegal_transition"


class IdempotencyMismatch(Conflict):
    """Raised when an ``Idempotency-Key`` is reused with a different request."""

    code = "idempotency_mismatch"


class DuplicateValue(Conflict):
    """Raised when a value that must be unique in a tenant is taken."""

    code = "duplicate"
