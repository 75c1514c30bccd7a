"""A child of ``prism serve`` and its supervisor: the child dies with it. Standard library only: every ``prism``
command calls ``follow_parent`` first, before it imports what it runs."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

#: Set in each child's environment: the supervisor it must not outlive.
PARENT_ENV = "PRISM_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """In a child of ``serve``: die with the supervisor (SIGTERM from the kernel), and not start if it is gone."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the supervisor's own stop still reaches each child
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        raise SystemExit("prism serve, which started this process, has already exited")
