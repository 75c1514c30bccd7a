"""Prism's one root error, ``PrismError``, the stores' two, and the write side's: a shallow tree, each with its
HTTP meaning.

The root lives here because ``write`` imports nothing else of Prism and every package may import its contracts:
each package's errors descend from ``PrismError``, and the HTTP edge maps them all with one handler. A store
adapter (``projections.stores``) turns its driver's failures into ``StoreUnavailable`` (the store is down, hung
or overloaded: retry later) or ``StoreRejected`` (the store refused this work: retrying the same will not help).
"""

from __future__ import annotations


class PrismError(Exception):
    """Root of every error Prism raises: what it means over HTTP (status, code, headers) and a message for people."""

    http_status = 500
    code = "internal"
    #: Whether the same work may succeed later (a store back up); workers retry these, never park their events.
    retryable = False

    def __init__(self, message: str = "", field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__doc__ or self.__class__.__name__
        self.field = field
        self.headers = headers


class StoreUnavailable(PrismError):
    """Raised when a store is down, does not answer within its deadline, or refuses work for now (overload)."""

    http_status = 503
    code = "unavailable"
    retryable = True

    def __init__(self, store: str, reason: str, retry_after: int = 1) -> None:
        super().__init__(
            f"the {store} store is unavailable ({reason}); nothing was changed, retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.store, self.reason = store, reason


class StoreBusy(StoreUnavailable):
    """Raised when every connection to a store stayed in use for the pool's timeout: the request did nothing."""

    code = "busy"


class StoreRejected(PrismError):
    """Raised when a store refuses the work itself (a document or statement it cannot take): the batch's fault."""

    code = "store_rejected"

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"the {store} store refused the work: {reason}")
        self.store, self.reason = store, reason


class WriteError(PrismError):
    """Root of every error a command can raise."""

    http_status = 400
    code = "bad_request"


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
