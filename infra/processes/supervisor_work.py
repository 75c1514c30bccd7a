"""What ``prism serve``'s supervisor runs itself, on a thread of its own: the relay, the watch on rebuilds, and the
publication of this host's processes for the console (``infra.console.hosts``).

The relay was a child of its own: an interpreter (~100 MB) for a loop that mostly waits on a notification. In the
supervisor it stays out of the API processes (an API process restarted does not stop it) and dies only with the
supervisor, whose children then die too; a failure inside it is retried here (``Relay.run`` already retries a
lost database or broker). The rebuild watch reads every few seconds which projections have a version being built
or dropped (``versions.rebuilding``): the supervisor keeps a store's builder process only while one of its
projections has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Collection

from infra.settings import Settings

log = logging.getLogger("prism.serve")
#: Seconds between two looks at the versions table: a rebuild waits at most this long for its builder to start.
REBUILDS_POLL_SECONDS = 2.0
#: Pause before the relay and the watch start again after an unexpected failure.
RESTART_PAUSE_SECONDS = 1.0


class SupervisorWork:
    """The relay (if ``relay``) and the rebuild watch of the projections in ``watched``, on a thread."""

    def __init__(self, settings: Settings, relay: bool, watched: Collection[str]) -> None:
        self.settings, self.relay, self.watched = settings, relay, set(watched)
        #: Per projection of ``watched``, when a look last found it with a version being built or dropped (monotonic).
        self.rebuild_seen: dict[str, float] = {}
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._failing = False
        self._published = 0.0
        self._thread = threading.Thread(target=self._run, name="serve-relay-and-rebuild-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the relay and the watch, waiting at most ``timeout`` seconds."""
        self._stopping.set()
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):  # that loop has closed already
                self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)

    def rebuild_seen_within(self, seconds: float, names: Collection[str]) -> bool:
        """Whether a look in the last ``seconds`` found a rebuild or a drop of one of the projections ``names``."""
        now = time.monotonic()
        return any(name in self.rebuild_seen and now - self.rebuild_seen[name] <= seconds for name in names)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                asyncio.run(self._main())
            except Exception:
                log.exception("the relay and rebuild watch failed; starting them again")
                self._stopping.wait(RESTART_PAUSE_SECONDS)

    async def _main(self) -> None:
        # Imported here: the supervisor reads its settings and starts its children before it loads the clients.
        from infra import bootstrap
        from infra.processes.pipeline import Pipeline

        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        if self._stopping.is_set():
            return
        engine = bootstrap.write_engine(self.settings, pool_size=1)
        pipeline = Pipeline(self.settings, with_worker=False) if self.relay else None
        try:
            if pipeline is not None:
                await pipeline.start()
            while not self._stopped.is_set():
                await self._look(engine)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), REBUILDS_POLL_SECONDS)
        finally:
            if pipeline is not None:
                await pipeline.stop()
            await engine.dispose()

    async def _look(self, engine) -> None:
        from infra.console import hosts
        from workers import versions

        try:
            async with engine.connect() as conn:
                found = await versions.rebuilding(conn)
        except Exception as error:  # noqa: BLE001  # the write database is away: look again at the next poll
            if not self._failing:  # once per outage, not every poll
                log.warning(
                    "rebuild watch: %s: %s; looking again every %.0fs",
                    type(error).__name__,
                    error,
                    REBUILDS_POLL_SECONDS,
                )
            self._failing = True
            return
        self._failing = False
        now = time.monotonic()
        self.rebuild_seen |= dict.fromkeys(found & self.watched, now)
        if now - self._published >= self.settings.console_sample_seconds:
            self._published = now
            with contextlib.suppress(Exception):  # the console's list of processes: never a reason to stop watching
                await hosts.publish(engine, self.settings)
