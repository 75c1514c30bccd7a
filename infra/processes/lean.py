"""What the processes of ``prism serve`` leave out: a library a dependency imports that Prism never uses there.

The Elasticsearch client imports pyarrow (and through it numpy) at import time whenever it is installed (chDB's
install brings it), for ES|QL's Arrow answers, which Prism never asks for. Each interpreter then held ~40 MB of
it privately (its C++ libraries' relocated data and its allocator's arenas), times every API and worker process.
Marked absent here (``None`` in ``sys.modules``: an import of it raises ImportError, exactly as when it is not
installed, which the Elasticsearch client, clickhouse-connect and chDB all expect), it is never loaded. chDB's own
Python layer imports it too, for Arrow and DataFrame answers; Prism reads and writes ClickHouse in its native format
only, so the embedded engine's owner leaves it out as well.

Two more, for the same reason and a few MB each: the Elasticsearch client's transport imports every HTTP library it
can find to offer each as a node class (Prism's is aiohttp's), ``requests`` among them; and httpx imports its
command-line tool's libraries whenever they are installed (click, then pygments, whose absence stops the rest).
And redis-py imports OpenTelemetry's SDK whenever it is installed, for client metrics Prism never turns on (~2 MB,
~35 ms of start-up). Tracing (``infra.telemetry``), when it is on, keeps the SDK and ``requests``, its exporter's.
"""

from __future__ import annotations

import sys

#: Modules the processes of ``prism serve`` never use, though their dependencies import them if present.
UNUSED = ("pyarrow", "requests", "pygments", "opentelemetry.sdk")


def leave_out_unused(keep: tuple[str, ...] = ()) -> None:
    """Make ``UNUSED`` modules unimportable in this process, but those it will ``keep``; call before anything
    imports the store clients."""
    for name in UNUSED:
        if name not in keep:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: the import system's "not found" mark
