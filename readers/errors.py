"""The readers' errors, mapped once to HTTP at the application edge."""

from __future__ import annotations

from write.errors import PrismError


class ReaderError(PrismError):
    """Root of every error a reader raises about its request (a store that fails raises ``StoreUnavailable``)."""

    http_status = 400
    code = "bad_request"


class NotFound(ReaderError):
    """Raised when the asked-for document is not in the caller's tenant (or not projected yet)."""

    http_status = 404
    code = "not_found"


class InvalidQuery(ReaderError):
    """Raised when query parameters contradict each other."""

    http_status = 422
    code = "invalid"
