"""Prometheus exposition of the projection status: the same figures as ``prism status``, a series per partition of a
split version (``order_summaries/2of8``) and one that rolls them up (``order_summaries``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from infra.ops.status import ProjectionStatus

#: (metric suffix, help, attribute of ProjectionStatus)
GAUGES = [
    ("checkpoint", "Last log position the projection applied", "checkpoint"),
    ("lag_events", "Events in the log after the checkpoint", "lag_events"),
    ("lag_seconds", "Age of the oldest unapplied event", "lag_seconds"),
    ("dead_letters", "Parked poison events", "dead_letters"),
    ("last_batch_size", "Events in the last applied batch", "last_batch_size"),
    ("last_batch_seconds", "Time the last batch took to apply", "last_batch_seconds"),
]


class _Snapshot:
    def __init__(self, rows: list[ProjectionStatus]) -> None:
        self.rows = rows

    def collect(self):
        head = GaugeMetricFamily("prism_log_head", "Highest committed log position")
        head.add_metric([], max((r.head for r in self.rows), default=0))
        yield head
        for suffix, text, attribute in GAUGES:
            family = GaugeMetricFamily(f"prism_projection_{suffix}", text, labels=["projection"])
            for row in self.rows:
                value = getattr(row, attribute)
                if value is not None:
                    family.add_metric([row.projection], float(value))
            yield family
        halted = GaugeMetricFamily("prism_projection_halted", "1 when halted at a poison event", labels=["projection"])
        for row in self.rows:
            halted.add_metric([row.projection], 1.0 if row.state == "halted" else 0.0)
        yield halted
        held = GaugeMetricFamily(
            "prism_projection_held",
            "1 for the process (host, role, pid) that holds a projection's or a partition's lock now",
            labels=["projection", "host", "role", "pid"],
        )
        for row in self.rows:
            if row.holder and row.holder.count("/") == 2:
                held.add_metric([row.projection, *row.holder.split("/")], 1.0)
        yield held


def exposition(rows: list[ProjectionStatus]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Snapshot(rows))
    return generate_latest(registry)
