"""Traces with OpenTelemetry: off unless the standard ``OTEL_*`` variables ask for them.

With ``OTEL_TRACES_EXPORTER`` (other than ``none``) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, and
``OTEL_SDK_DISABLED`` not true, each process sends its spans over OTLP/HTTP: a span per
command (``write.bus``), one per projection batch linked to the commands whose events it
applied (``workers.batch_spans``), and those of the FastAPI, asyncpg and Redis
instrumentations. The SDK's own variables (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, headers...) apply as they always do.

Off, this module imports nothing: Prism's spans go to the API's no-op tracer, and a
process starts as fast as before. The SDK is imported by ``configure`` alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from infra.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Whether ``configure`` installed tracing in this process (an app is instrumented only then).
_installed = False


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces to be sent."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporter) or any(environ.get(name) for name in endpoints)


def needs() -> tuple[str, ...]:
    """What a lean process (``infra.processes.lean``) must keep importable for tracing: the SDK, and its
    exporter's HTTP client."""
    return ("opentelemetry.sdk", "requests") if wanted() else ()


def configure(settings: Settings, role: str) -> bool:
    """Install the SDK, its OTLP/HTTP exporter and the libraries' instrumentations when ``wanted``; True if it
    did."""
    global _installed
    if _installed or not wanted():
        return _installed
    from infra import telemetry_sdk

    telemetry_sdk.install(settings.host_name, role)
    _installed = True
    return True


def instrument_app(app: FastAPI) -> None:
    """A span per request of ``app`` when tracing is on; nothing otherwise."""
    if _installed:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
