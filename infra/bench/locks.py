"""Who holds the write side's append lock, sampled while Prism runs: how often it is held, and by a
transaction doing what (its own statement, its COMMIT, or waiting for its client: idle in transaction)."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from write.event_log import APPEND_LOCK_KEY

#: A bigint advisory key shows in ``pg_locks`` as its high and low 32 bits, with ``objsubid`` 1.
#: The append lock of this database only: another database on the same server (a test run beside the bench, or the
#: demo's) takes an advisory lock of the same key, and one sample would count both holders.
_HOLDER = (
    "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class AppendLockSampler:
    """Samples the append lock's holder every few milliseconds until stopped."""

    def __init__(self, dsn: str, every_s: float = 0.005) -> None:
        self.dsn, self.every_s = dsn, every_s
        self.samples, self.states = 0, Counter[str]()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                for row in await conn.fetch(_HOLDER, APPEND_LOCK_KEY >> 32, APPEND_LOCK_KEY & 0xFFFFFFFF):
                    self.states[row["state"]] += 1
                self.samples += 1
                await asyncio.sleep(self.every_s)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop.set()

    def shares(self) -> dict:
        """Percent of samples the lock was held, and of those, percent whose holder waited on its client."""
        held = sum(self.states.values())
        return {
            "samples": self.samples,
            "held_percent": round(100 * held / self.samples, 1) if self.samples else None,
            "holder_idle_percent": round(100 * self.states["idle in transaction"] / held, 1) if held else None,
        }
