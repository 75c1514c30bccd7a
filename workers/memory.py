"""Giving freed memory back to the system after a large catch-up or rebuild.

A catch-up or rebuild batch of thousands of events decodes them into hundreds of thousands of objects at once; freed,
they leave the C allocator's heap holding their pages, and an idle worker kept ~30 MB more than before its first
large batch (PSS, per worker, after catching up 12,429 events). ``malloc_trim`` returns the free pages at the top of
the heap and inside it. It takes milliseconds, so it runs once a drain has reached the head after at least
``LARGE_DRAIN`` positions of the log were passed in this process since the last time: once when a catch-up or a
rebuild is done (not once per slice of it), and under steady live writes once every few thousand events. It runs on
a thread of its own (the call releases the GIL): the event loop goes on serving.
"""

from __future__ import annotations

import ctypes
import functools
import threading

#: Log positions passed (events applied or skipped) in this process, since the last trim, that make the next one due.
LARGE_DRAIN = 2_000


class Passed:
    """Positions the drains of a process passed since its last trim (they run on several threads of a worker)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self, positions: int) -> None:
        with self._lock:
            self._count += positions

    def due(self) -> bool:
        """Whether enough was passed since the last trim; if so, the count starts again."""
        with self._lock:
            if self._count < LARGE_DRAIN:
                return False
            self._count = 0
            return True


#: This process's count.
PASSED = Passed()


@functools.cache
def _trim() -> object | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back() -> bool:
    """Return the allocator's free pages to the system; False where this C library cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)  # type: ignore[operator]  # a C function: int malloc_trim(size_t pad)
    return True
