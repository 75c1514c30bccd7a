"""Tracing is off unless the standard ``OTEL_*`` variables ask for it; on, each process names its host and role.

The processes run in fresh interpreters: a tracer provider is installed once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from infra import telemetry


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "prism-eu"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ],
)
def test_tracing_is_on_only_when_the_standard_variables_ask(environ: dict[str, str], wanted: bool) -> None:
    assert telemetry.wanted(environ) is wanted


#: A lean process of ``prism serve`` starting as ``infra.cli.main`` starts it, then a command's span.
STARTING = """
import json, sys
from infra import telemetry
from infra.processes.lean import leave_out_unused
leave_out_unused(keep=telemetry.needs())
from opentelemetry import trace
from infra.settings import Settings
from write.bus import _TRACER
configured = telemetry.configure(Settings(host_name="host-c"), "worker-redis")
provider = trace.get_tracer_provider()
with _TRACER.start_as_current_span("command RegisterTenant") as span:
    recording = span.is_recording()
print(json.dumps({
    "configured": configured,
    "provider": type(provider).__name__,
    "resource": dict(getattr(provider, "resource", None) and provider.resource.attributes or {}),
    "recording": recording,
    "sdk": sys.modules.get("opentelemetry.sdk") is not None,
}))
"""


def started(**environ: str) -> dict:
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", STARTING], env=plain | environ, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_without_the_variables_nothing_is_installed_and_the_sdk_is_not_loaded() -> None:
    assert started() == {
        "configured": False,
        "provider": "ProxyTracerProvider",
        "resource": {},
        "recording": False,
        "sdk": False,
    }


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP endpoint on a local port, keeping the bodies it is sent."""
    received: list[bytes] = []

    class Collect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def test_with_an_endpoint_a_lean_process_exports_its_spans_with_its_host_and_role(collector) -> None:
    endpoint, received = collector
    process = started(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="prism-eu")
    assert (process["configured"], process["provider"], process["recording"]) == (True, "TracerProvider", True)
    [body] = received  # the batch, sent at exit
    [spans] = ExportTraceServiceRequest.FromString(body).resource_spans
    resource = {a.key: a.value.string_value for a in spans.resource.attributes}
    assert (resource["service.name"], resource["host.name"], resource["prism.role"]) == (
        "prism-eu",
        "host-c",
        "worker-redis",
    )
    assert [span.name for scope in spans.scope_spans for span in scope.spans] == ["command RegisterTenant"]
