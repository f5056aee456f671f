"""Traces and metrics with OpenTelemetry: turn them on in one line, see a trace cross the broker."""

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import broker
from broker import Connection, Consumer, Producer, Queue

# Your application's providers (here: kept in memory; usually OTLP exporters).
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
metrics = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[metrics])

# The one line (without arguments it uses the global providers).
broker.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

with Connection("memory://") as conn:
    orders = Queue("orders")
    Producer(conn, routing_key="orders").publish({"order": 1}, declare=[orders])

    def charge(body, message):
        message.ack()

    with Consumer(conn, [orders], callbacks=[charge]):
        conn.drain_events(timeout=1)

broker.uninstrument()

for span in spans.get_finished_spans():
    # publish orders, process orders (its child, across the broker), ack orders
    print(f"{span.name:16} trace {span.context.trace_id:032x}")
