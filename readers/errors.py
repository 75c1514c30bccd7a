"""The readers' errors, mapped once to HTTP at the application edge."""

from __future__ import annotations


class ReaderError(Exception):
    """Root of every error a reader raises."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ReaderError):
    """Raised when the asked-for document is not in the caller's tenant (or not projected yet)."""

    http_status = 404
    code = "not_found"


class InvalidQuery(ReaderError):
    """Raised when query parameters contradict each other."""

    http_status = 422
    code = "invalid"
