"""What a projection's batch says about itself: a span, and its place in every log line written while it applies.

The span (``apply <label>``) is linked to the span of each traced command whose events
the batch applies: such a command's events carry its trace id as their correlation id and
its span id as their causation id (``write.bus``), so a trace view leads from a write to
the batch of each read store that made it visible, and back. Untraced, the span is the
API's no-op and no link is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from projections.base import Projection
from write import log_context
from write.events import StoredEvent

#: A span per batch; a proxy that follows the tracer provider a process installs (``infra.telemetry``).
_TRACER = trace.get_tracer("prism.workers")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@contextmanager
def applying(projection: Projection, events: Sequence[StoredEvent], after: int, upto: int) -> Iterator[None]:
    """Around one batch of ``projection``: the log's slice after ``after`` up to ``upto``, of which it handles
    ``events``."""
    partition = str(projection.partition)
    with (
        log_context.about(projection=projection.label, partition=partition, position=upto),
        _TRACER.start_as_current_span(f"apply {projection.label}") as span,
    ):
        if span.is_recording():  # untraced, a batch costs no attribute and no link
            span.set_attributes(
                {
                    "prism.projection": projection.label,
                    "prism.partition": partition,
                    "prism.from_position": after + 1,
                    "prism.to_position": upto,
                    "prism.events": len(events),
                }
            )
            for command in commands(events):
                span.add_link(command)
        yield


def commands(events: Sequence[StoredEvent]) -> list[SpanContext]:
    """The span of each traced command that wrote some of ``events``, once each, in log order."""
    caused = dict.fromkeys(
        (event.correlation_id, event.causation_id)
        for event in events
        if event.correlation_id is not None and event.causation_id is not None
    )
    return [
        SpanContext(trace_id=trace_id.int, span_id=span_id.int, is_remote=True, trace_flags=_SAMPLED)
        for trace_id, span_id in caused
    ]
