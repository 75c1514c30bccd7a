"""Which failures are worth waiting out, and which mark an event as poison: decided on Prism's errors alone.

The projection's store adapter turns its driver's failure into ``StoreUnavailable`` (down, hung, overloaded:
retried with backoff, never blamed on the event) or ``StoreRejected`` (the batch's fault: its events are tried one
by one and a failing one is parked after its attempts). Only on the failure path: a clean batch costs nothing.
"""

from __future__ import annotations

from projections.stores import registry
from write.errors import PrismError


def is_transient(error: BaseException, store: str | None = None) -> bool:
    """True for failures of the store itself (``store``'s, if given); their events are retried, never parked."""
    translated = registry.translate(error, store)
    return isinstance(translated, PrismError) and translated.retryable
