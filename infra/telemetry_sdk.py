"""The OpenTelemetry SDK's setup, imported only when tracing is on (``infra.telemetry``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import HOST_NAME, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

#: The resource attribute naming the process (``api-1``, ``worker-redis``, ``serve``...), as its log lines do.
ROLE = "prism.role"


def install(host: str, role: str) -> TracerProvider:
    """This process's tracer provider, exporting in batches over OTLP/HTTP, and the store clients instrumented."""
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "prism", HOST_NAME: host, ROLE: role}
    )
    provider = TracerProvider(resource=resource)
    provider.sampler = NoLoneCalls(provider.sampler)  # before any tracer is made: each takes the sampler it finds
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    RedisInstrumentor().instrument()
    return provider


class NoLoneCalls(Sampler):
    """Drops a store call that no request, command or batch made, and leaves every other decision to the sampler
    the ``OTEL_TRACES_SAMPLER`` variables configure.

    A Dramatiq consumer looks at its queue every ``worker_poll_ms``, the relay and the
    workers at the log between batches: a trace each would bury the few that tell a
    story under thousands of one-span traces a minute.
    """

    def __init__(self, configured: Sampler) -> None:
        self.configured = configured

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        alone = not trace.get_current_span(parent_context).get_span_context().is_valid
        if alone and kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self.configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoLoneCalls{{{self.configured.get_description()}}}"
