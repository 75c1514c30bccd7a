"""Traces: a command's span, whose trace and span ids its events carry, and the projection batch that applied them
linked back to it; untraced, a command keeps a fresh correlation id and records nothing.

A tracer provider can be installed once per process: this module installs one for the session, whose sampler is
off (the other tests run untraced, as without the SDK) except inside a test that asks for ``traced``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy import select

from workers.catch_up import catch_up
from write.commands import RegisterCustomer
from write.schema import events


class Switch(Sampler):
    """Samples every span while on, none while off."""

    def __init__(self) -> None:
        self.on = False

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
        sampler = ALWAYS_ON if self.on else ALWAYS_OFF
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "Switch"


@dataclass
class Tracing:
    spans: InMemorySpanExporter
    switch: Switch

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]


@pytest.fixture(scope="session")
def tracing() -> Tracing:
    installed = Tracing(InMemorySpanExporter(), Switch())
    provider = TracerProvider(sampler=installed.switch)
    provider.add_span_processor(SimpleSpanProcessor(installed.spans))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another tracer provider was installed first"
    return installed


@pytest.fixture
def traced(tracing: Tracing) -> Iterator[Tracing]:
    tracing.spans.clear()
    tracing.switch.on = True
    try:
        yield tracing
    finally:
        tracing.switch.on = False
        tracing.spans.clear()


async def written_by(write_engine, position: int) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The correlation and causation ids of the event at ``position``."""
    query = select(events.c.correlation_id, events.c.causation_id).where(events.c.position == position)
    async with write_engine.connect() as conn:
        correlation, causation = (await conn.execute(query)).one()
    return correlation, causation


async def test_a_batch_links_to_the_span_of_each_command_whose_events_it_applied(
    traced: Tracing, bus, tenant, write_engine, projections
) -> None:
    result = await bus.execute(RegisterCustomer(tenant, "Ada Lovelace", f"ada@{tenant}.example"))

    [command] = traced.finished("command RegisterCustomer")
    ids = command.get_span_context()
    assert command.attributes is not None
    assert (command.attributes["prism.tenant"], command.attributes["prism.position"]) == (tenant, result.position)
    assert await written_by(write_engine, result.position) == (uuid.UUID(int=ids.trace_id), uuid.UUID(int=ids.span_id))

    dashboards = projections["customer_dashboards"]
    progress = await catch_up(write_engine, dashboards, batch_size=500)
    assert not progress.skipped and progress.checkpoint >= result.position
    linked = [
        (batch, link)
        for batch in traced.finished(f"apply {dashboards.label}")
        for link in batch.links
        if link.context.span_id == ids.span_id
    ]
    assert len(linked) == 1, traced.finished(f"apply {dashboards.label}")
    batch, link = linked[0]
    assert (link.context.trace_id, link.context.is_remote) == (ids.trace_id, True)
    assert batch.attributes is not None
    assert batch.attributes["prism.projection"] == dashboards.label
    assert batch.attributes["prism.from_position"] <= result.position <= batch.attributes["prism.to_position"]
    assert batch.attributes["prism.events"] >= 1


async def test_untraced_a_command_gets_a_fresh_correlation_id_and_no_causation(
    tracing: Tracing, bus, tenant, write_engine
) -> None:
    tracing.spans.clear()
    first = await bus.execute(RegisterCustomer(tenant, "Grace Hopper", f"grace@{tenant}.example"))
    second = await bus.execute(RegisterCustomer(tenant, "Edsger Dijkstra", f"edsger@{tenant}.example"))

    (one, no_cause), (other, none_either) = [await written_by(write_engine, r.position) for r in (first, second)]
    assert one is not None and other is not None
    assert (one.version, other.version, one != other) == (4, 4, True)
    assert (no_cause, none_either) == (None, None)
    assert tracing.spans.get_finished_spans() == ()
