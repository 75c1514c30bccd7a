"""JSON logs: one object per record with the work's context, and ``prism serve``'s supervisor keeping every line one
object (its children's JSON lines as they are, anything else wrapped under the child's role)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from infra import logs
from write import log_context


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the handler ``logs.configure`` installs for JSON, into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.json_formatter("host-a", "worker-redis"))
    handler.addFilter(logs.WorkContext())
    logger = logging.getLogger("prism.test_json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_record_inside_a_context_is_one_json_line_with_every_field(captured) -> None:
    logger, out = captured
    correlation = uuid.uuid4()
    with (
        log_context.about(tenant="t-1", correlation_id=correlation),
        log_context.about(projection="order_summaries@v2/2of4", partition="2of4", position=1234),
    ):
        try:
            raise ValueError("no such order")
        except ValueError:
            logger.exception("batch up to %d failed", 1234)
    [line] = lines(out)  # the traceback's lines inside the one object
    assert datetime.fromisoformat(line.pop("time")).utcoffset() == timedelta(0)
    assert "ValueError: no such order" in line.pop("exc_info")
    assert line == {
        "level": "ERROR",
        "logger": "prism.test_json_logs",
        "message": "batch up to 1234 failed",
        "host": "host-a",
        "role": "worker-redis",
        "projection": "order_summaries@v2/2of4",
        "partition": "2of4",
        "position": 1234,
        "tenant": "t-1",
        "correlation_id": str(correlation),
    }


def test_a_context_ends_with_its_block(captured) -> None:
    logger, out = captured
    with log_context.about(tenant="t-1", position=7):
        with log_context.about(position=8):
            logger.warning("inner")
        logger.warning("outer")
    logger.warning("after")
    inner, outer, after = lines(out)
    assert (inner["tenant"], inner["position"], outer["tenant"], outer["position"]) == ("t-1", 8, "t-1", 7)
    assert not {"tenant", "position", "exc_info"} & set(after)


async def test_concurrent_tasks_log_their_own_context(captured) -> None:
    logger, out = captured

    async def command(tenant: str) -> None:
        with log_context.about(tenant=tenant):
            await asyncio.sleep(0)  # the other task runs in between, its own tenant set
            logger.warning("ran %s", tenant)

    await asyncio.gather(command("t-a"), command("t-b"))
    assert sorted((line["message"], line["tenant"]) for line in lines(out)) == [("ran t-a", "t-a"), ("ran t-b", "t-b")]


#: A supervisor on these settings pumping one child's output: a JSON line of the child's log and a line that is not
#: (a print), then saying something of its own.
SUPERVISING = """
import subprocess, sys
from infra import logs
from infra.processes.supervisor import Supervisor
from infra.settings import Settings

settings = Settings(log_format=sys.argv[1], host_name="host-b")
logs.configure(settings, "serve")
child = subprocess.Popen(
    [sys.executable, "-c", "print('{\\"role\\": \\"api-2\\", \\"message\\": \\"logged\\"}'); print('printed')"],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
)
supervisor = Supervisor(settings)
supervisor._pump("api-2", child)
supervisor._say("serving")
"""


def supervised(log_format: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SUPERVISING, log_format], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stderr.splitlines()


def test_the_supervisor_keeps_every_line_one_json_object() -> None:
    passed, wrapped, said = (json.loads(line) for line in supervised("json"))
    assert passed == {"role": "api-2", "message": "logged"}  # as the child wrote it
    assert (wrapped["role"], wrapped["logger"], wrapped["message"]) == ("api-2", "prism.serve.output", "printed")
    assert (said["role"], said["level"], said["message"], said["host"]) == ("serve", "INFO", "serving", "host-b")


def test_with_text_logs_the_supervisor_prefixes_each_line_with_the_child() -> None:
    assert supervised("text") == [
        f"{'api-2':<28}| " + '{"role": "api-2", "message": "logged"}',
        f"{'api-2':<28}| printed",
        "prism serve: serving",
    ]
