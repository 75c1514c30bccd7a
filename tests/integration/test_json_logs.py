"""A real API process of ``prism serve``'s logs as ``PRISM_LOG_FORMAT`` says: one JSON object per line, its own
records and uvicorn's alike, with its host and role; or, by default, the plain lines as they always were. And what a
command and a projection's batch name for the lines logged while they run.

The process is ``prism api`` on a listening socket this test holds, as ``serve`` runs it under the name it gives
(``api-3``). It logs a warning as it starts (the test settings' deprecated operator token); uvicorn logs one when it
is sent bytes that are no HTTP request.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from infra.logs import ROLE_ENV
from infra.settings import Settings
from projections.base import Batch
from workers.catch_up import catch_up
from write import log_context
from write.bus import CommandBus
from write.commands import RegisterCustomer
from write.event_log import EventLog

OPERATOR_TOKEN_WARNING = "PRISM_OPERATOR_TOKEN acts as an operator key for this release only"


def api_output(settings: Settings, tmp_path: Path, log_format: str) -> str:
    """What an API process on ``settings`` writes to stderr from its start to its stop, having answered a request
    that is not HTTP."""
    settings = settings.model_copy(
        update={
            "log_format": log_format,
            "host_name": "json-probe",
            # Beside an engine's owner (none answers): no embedded ClickHouse opened in this process.
            "clickhouse_owner_socket": str(tmp_path / "owner.sock"),
        }
    )
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.set_inheritable(True)
        child = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "api", "--fd", str(listener.fileno())],
            env=settings.child_environment() | {ROLE_ENV: "api-3"},
            pass_fds=(listener.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with socket.create_connection(listener.getsockname(), timeout=90) as client:
                client.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                answer = client.recv(1024)  # once the process has started and served it
            assert answer.startswith(b"HTTP/1.1 400"), answer
        finally:
            child.terminate()
            out, err = child.communicate(timeout=60)
    assert child.returncode in (0, -signal.SIGTERM), err  # stopped as asked (uvicorn raises the signal again)
    assert out == ""  # nothing on stdout: uvicorn's access lines, were there any, would be on the same stderr
    return err


def test_with_json_logs_every_line_is_one_object_with_the_host_and_role(fresh_services, tmp_path) -> None:
    records = [json.loads(line) for line in api_output(fresh_services, tmp_path, "json").splitlines()]
    assert records and all((r["host"], r["role"]) == ("json-probe", "api-3") for r in records), records
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    said = {(r["level"], r["logger"], r["message"].split(";")[0]) for r in records}
    assert ("WARNING", "prism.api", OPERATOR_TOKEN_WARNING) in said, said
    assert ("WARNING", "uvicorn.error", "Invalid HTTP request received.") in said, said


def test_by_default_the_lines_are_plain_text(fresh_services, tmp_path) -> None:
    lines = api_output(fresh_services, tmp_path, "text").splitlines()
    ours = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} json-probe WARNING prism\.api: " + OPERATOR_TOKEN_WARNING)
    assert any(ours.match(line) for line in lines), lines
    assert "WARNING:  Invalid HTTP request received." in lines  # uvicorn's own format, as before
    assert not any(line.startswith("{") for line in lines), lines


class SeenLog(EventLog):
    """The event log, noting the log context its appends run in."""

    seen: dict[str, object] | None = None

    async def append(self, conn, tenant_id, new, correlation_id=None, causation_id=None) -> None:
        self.seen = dict(log_context.current())
        await super().append(conn, tenant_id, new, correlation_id, causation_id)


async def test_a_command_and_a_batch_name_their_work_for_the_lines_they_log(
    write_engine, tenant, projections, monkeypatch
) -> None:
    log = SeenLog()
    result = await CommandBus(write_engine, log).execute(RegisterCustomer(tenant, "Ada", f"ada@{tenant}.example"))
    assert log.seen is not None and log.seen["tenant"] == tenant
    assert isinstance(log.seen["correlation_id"], uuid.UUID) and set(log.seen) == {"tenant", "correlation_id"}
    assert dict(log_context.current()) == {}  # over with the command

    dashboards = projections["customer_dashboards"]
    seen: list[tuple[dict[str, object], int]] = []
    apply = dashboards.apply

    async def seeing(batch: Batch) -> None:
        seen.append((dict(log_context.current()), batch.upto))
        await apply(batch)

    monkeypatch.setattr(dashboards, "apply", seeing)
    await catch_up(write_engine, dashboards, batch_size=500)
    assert seen and seen[-1][1] >= result.position
    for context, upto in seen:
        assert context == {"projection": dashboards.label, "partition": "1of1", "position": upto}
