"""Giving freed memory back to the system after a large batch.

A catch-up or rebuild batch of thousands of events decodes them into hundreds of thousands of objects at once; freed,
they leave the C allocator's heap holding their pages, and an idle worker kept ~30 MB more than before its first
large batch (PSS, per worker, after catching up 12,000 events). ``malloc_trim`` returns the free pages at the top of
the heap and inside it; it takes a few milliseconds, so it runs after a drain that passed ``LARGE_DRAIN`` positions
of the log, never after the live path's small ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: Log positions a drain passes (events it applied or skipped) from which it gives its memory back when it ends.
LARGE_DRAIN = 2_000


@functools.cache
def _trim() -> object | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def give_back() -> bool:
    """Return the allocator's free pages to the system; False where this C library cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)  # type: ignore[operator]  # a C function: int malloc_trim(size_t pad)
    return True
