"""HTTP load against a running ``prism serve``: closed loops of N clients, open loops at a fixed rate, and a
probe that records when each store's checkpoint moves.

Latencies of an open loop count from each request's scheduled time, not from when a
connection came free, so a saturated server shows as latency rather than hiding
behind a slower sender.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from write.errors import PrismError

Request = Callable[[aiohttp.ClientSession], Awaitable[dict | None]]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(latencies_s: list[float], seconds: float, errors: int) -> dict:
    ms = [v * 1000 for v in latencies_s]
    return {
        "requests": len(ms),
        "errors": errors,
        "per_s": round(len(ms) / seconds, 1),
        **{f"p{q}_ms": _round(percentile(ms, q)) for q in (50, 95, 99)},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Failed(PrismError):
    """A request answered with an error status."""


async def call(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> dict:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json(content_type=None)
        if response.status >= 400:
            raise Failed(f"{method} {url} -> {response.status}: {body}")
        return body


async def closed_loop(session: aiohttp.ClientSession, request: Request, clients: int, seconds: float) -> dict:
    """``clients`` loops, each sending its next request when the last one answers."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await request(session)
            except (TimeoutError, Failed, aiohttp.ClientError) as error:
                errors.append(str(error))
                continue
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    result = summary(latencies, time.monotonic() - started, len(errors))
    return result | ({"first_error": errors[0][:300]} if errors else {})


@dataclass
class Sent:
    scheduled: float
    answered: float
    position: int


@dataclass
class OpenLoop:
    rate: float
    seconds: float
    sent: list[Sent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unanswered: int = 0


async def open_loop(
    session: aiohttp.ClientSession, request: Request, rate: float, seconds: float, grace: float = 10.0
) -> OpenLoop:
    """Requests scheduled every ``1/rate`` seconds whatever the answers; each must answer ``{position}``.

    Requests still unanswered ``grace`` seconds after the last was sent are abandoned
    and counted (an overloaded server would otherwise stretch the run without bound).
    """
    run = OpenLoop(rate, seconds)
    start = time.perf_counter()
    tasks = []

    async def one(at: float) -> None:
        try:
            answer = await request(session)
        except (TimeoutError, Failed, aiohttp.ClientError) as error:
            run.errors.append(str(error))
            return
        if answer is None:
            run.errors.append("answered without a position")
            return
        run.sent.append(Sent(at, time.perf_counter(), answer["position"]))

    for n in range(int(rate * seconds)):
        at = start + n / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    run.unanswered = len(pending)
    return run


@dataclass
class Probe:
    """Reads of ``/positions``: (time answered, checkpoint per store); back to back, or one every ``every`` seconds
    (a probe whose reads cost the same whether the server is idle or loaded)."""

    url: str
    every: float = 0.0
    readings: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, session: aiohttp.ClientSession) -> None:
        start = time.perf_counter()
        while not self._stop.is_set():
            try:
                body = await call(session, "GET", self.url)
            except (TimeoutError, Failed, aiohttp.ClientError):
                continue
            now = time.perf_counter()
            self.readings.append((now, body["checkpoints"]))
            if self.every:  # the next tick of a fixed schedule; ticks missed while a read took long are skipped
                await asyncio.sleep(self.every - (now - start) % self.every)

    def stop(self) -> None:
        self._stop.set()

    def interval_ms(self) -> float | None:
        gaps = [(b[0] - a[0]) * 1000 for a, b in zip(self.readings, self.readings[1:], strict=False)]
        return _round(percentile(gaps, 50))


def visibility(run: OpenLoop, probe: Probe, stores: list[str]) -> dict[str, dict]:
    """Per store: commit-to-visible latency of every write, from its answer to the first reading at or past it.

    Checkpoints only grow, so the first such reading is found by bisection. A reading
    taken before the answer arrived counts as 0. A write its store never reached
    before the probe stopped counts as not visible.
    """
    result = {}
    for store in stores:
        times = [at for at, _ in probe.readings]
        marks = [checkpoints.get(store, 0) for _, checkpoints in probe.readings]
        latencies, missing = [], 0
        for sent in run.sent:
            i = bisect.bisect_left(marks, sent.position)
            if i == len(marks):
                missing += 1
            else:
                latencies.append(max(0.0, times[i] - sent.answered))
        ms = [v * 1000 for v in latencies]
        result[store] = {
            "visible": len(ms),
            "not_visible": missing,
            **{f"p{q}_ms": _round(percentile(ms, q)) for q in (50, 95, 99)},
        }
    return result


def open_loop_figures(run: OpenLoop, probe: Probe, rate: int, sent_for: float, stores: list[str]) -> dict:
    """What an open loop of commands showed: offered and achieved rates, errors, the commands' latencies, and
    commit-to-visible in each store as ``probe`` read it."""
    latencies = [s.answered - s.scheduled for s in run.sent]
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(len(run.sent) / sent_for, 1),
        "errors": len(run.errors) + run.unanswered,
        "unanswered": run.unanswered,
        "command": summary(latencies, sent_for, len(run.errors)),
        "probe_interval_ms": probe.interval_ms(),
        "stores": visibility(run, probe, stores),
    }
