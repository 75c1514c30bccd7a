"""Running Prism's HTTP side: an API process, the embedded engine's owner, and all in one process for the demo's
and the tests' background server. Workers and the relay alone: ``infra.processes.pipeline``."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from infra import logs
from infra.http.app import create_app
from infra.processes import engine_owner
from infra.processes.gc_tuning import tune_for_batches
from infra.processes.pipeline import Pipeline
from infra.settings import Settings
from projections.registry import writing_to

log = logging.getLogger("prism")


def app_with_pipeline(settings: Settings, pipeline: Pipeline) -> FastAPI:
    return create_app(settings, on_start=pipeline.start, on_stop=pipeline.stop)


#: How long the server keeps an idle connection open. Longer than clients keep theirs (httpx 5 s, aiohttp 15 s),
#: so a client never sends a request on a connection the server is closing at that moment (a ReadError that no
#: client retries for a POST); uvicorn's default, 5 s, was exactly httpx's.
KEEP_ALIVE_SECONDS = 75


def uvicorn_logging() -> dict | None:
    """uvicorn's own logging configuration, or none when this process writes JSON: its loggers then propagate to
    the root's handler instead of writing plain lines of their own."""
    return None if logs.writes_json() else LOGGING_CONFIG


def api(settings: Settings, fd: int | None = None) -> None:
    """The API and readers; on an inherited listening socket (``fd``) when ``serve`` runs several."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            log_config=uvicorn_logging(),
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    server.run(sockets=None if fd is None else [socket.socket(fileno=fd)])


def clickhouse_owner(settings: Settings, socket_path: str) -> None:
    """The one process that opens the embedded engine, once its host owns it: the analytics projection, and the whole
    app on a socket."""
    engine_owner.hold(settings)
    pipeline = Pipeline(settings, with_relay=False, projections=writing_to("clickhouse"))
    tune_for_batches()
    uvicorn.run(
        app_with_pipeline(settings, pipeline),
        uds=socket_path,
        log_level="warning",
        log_config=uvicorn_logging(),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


class BackgroundServer:
    """uvicorn in a thread, for the demo and the tests: same app, real HTTP on a local port."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        # The default loop setup would install uvloop as the process-wide policy, under the caller's own loop.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=uvicorn_logging(),
            loop="asyncio",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="prism-http", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started:
            if not self.thread.is_alive() or waited > timeout:
                raise RuntimeError("the HTTP server did not start; see the log above")
            deadline.wait(0.05)
            waited += 0.05

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
