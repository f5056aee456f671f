"""Recording brokerpool's OpenTelemetry output with the SDK's in-memory exporters.

``with recording() as rec:`` instruments brokerpool with a fresh tracer and
meter provider of its own (nothing global is touched), and uninstruments at
the end. ``rec.spans()`` are the finished spans, ``rec.points(name)`` the data
points of one metric, ``rec.total(name, where)`` the sum of a counter (or the
count of a histogram) over the points whose attributes include ``where``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs opentelemetry-sdk (the test extra)")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import broker

__all__ = ["Recording", "recording"]


class Recording:
    """What one :func:`recording` block captured."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans in the order they ended (only those called ``name``, if given)."""
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``."""
        found = self.spans(name)
        assert len(found) == 1, (name, [s.name for s in self.spans()])
        return found[0]

    def points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` collected now (empty if never recorded)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def total(self, name: str, where: Mapping[str, Any] | None = None) -> float:
        """A counter's or gauge's sum, or a histogram's count, over the points matching ``where``.

        ``where``: attributes a point must have (all of them).
        """
        total: float = 0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in (where or {}).items()):
                total += point.count if isinstance(point, HistogramDataPoint) else point.value
        return total

    def metric(self, name: str) -> Any:
        """The metric ``name`` itself (its unit and description)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        return metric
        raise AssertionError(f"no metric {name!r} was recorded")


@contextmanager
def recording() -> Iterator[Recording]:
    """Instrument brokerpool into a fresh :class:`Recording`; uninstrument at the end."""
    rec = Recording()
    broker.instrument(tracer_provider=rec.tracer_provider, meter_provider=rec.meter_provider)
    try:
        yield rec
    finally:
        broker.uninstrument()
