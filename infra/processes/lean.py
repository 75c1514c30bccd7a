"""What the processes of ``prism serve`` leave out: a library a dependency imports that Prism never uses there.

The Elasticsearch client imports pyarrow (and through it numpy) at import time whenever it is installed (chDB's
install brings it), for ES|QL's Arrow answers, which Prism never asks for. Each interpreter then held ~40 MB of
it privately (its C++ libraries' relocated data and its allocator's arenas), times every API and worker process.
Marked absent here (``None`` in ``sys.modules``: an import of it raises ImportError, exactly as when it is not
installed, which the Elasticsearch client and clickhouse-connect both expect), it is never loaded. The embedded
ClickHouse's owner is left alone: chDB may use it.
"""

from __future__ import annotations

import sys

#: Modules the API, worker and supervisor processes never use, though their dependencies import them if present.
UNUSED = ("pyarrow",)


def leave_out_unused() -> None:
    """Make ``UNUSED`` modules unimportable in this process; call before anything imports the store clients."""
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: the import system's "not found" mark
