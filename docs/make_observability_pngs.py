"""Make the pictures of ``docs/observability.rst`` from a real run.

Runs a small workload with brokerpool instrumented into the OpenTelemetry
SDK's in-memory exporters, then draws what they recorded with matplotlib:

* ``docs/images/observability-trace.png`` -- one trace as a waterfall: an
  application span publishing an order, the ``publish`` span, the broker hop,
  the consumer's ``process`` span with the application's work and the ``ack``;
* ``docs/images/observability-metrics.png`` -- a small dashboard: publish and
  process latency histograms, the pool gauges sampled while four threads share
  a pool of two connections, and the counters at the end.

Usage (from the repository root, with the test extra installed)::

    python docs/make_observability_pngs.py [URL]

URL defaults to the machine's RabbitMQ (``amqp://guest:guest@127.0.0.1:5672//``)
and falls back to ``memory://`` when nothing answers there.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import broker
from broker import Connection, Consumer, Producer, Queue

IMAGES = Path(__file__).resolve().parent / "images"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
MESSAGES = 200


def _default_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return "memory://"
    return RABBITMQ_URL


class Run:
    """The workload and what it recorded."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.app = self.tracer_provider.get_tracer("shop")
        self.pool_samples: list[tuple[float, dict[str, float]]] = []

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        if data is not None:
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out[metric.name] = list(metric.data.data_points)
        return out

    def messages(self) -> None:
        name = f"orders-{uuid.uuid4().hex[:6]}"
        with Connection(self.url) as conn:
            queue = Queue(name, durable=False, auto_delete=True)
            producer = Producer(conn, routing_key=name, confirm_publish=True)
            producer.maybe_declare(queue)
            done: list[int] = []

            def on_message(body: Any, message: Any) -> None:
                with self.app.start_as_current_span("charge card"):
                    time.sleep(0.0005 + (body["order"] % 7) * 0.0002)
                if body["order"] % 50 == 3 and not message.delivery_info["redelivered"]:
                    message.requeue()
                    return
                message.ack()
                done.append(body["order"])

            # A shop that takes an order, and the worker that charges for it, on one connection:
            # each order is published, then processed as soon as it arrives.
            with Consumer(conn, [queue], callbacks=[on_message], prefetch_count=20):
                for n in range(MESSAGES):
                    with self.app.start_as_current_span("checkout order"):
                        producer.publish({"order": n}, message_id=f"order-{n}",
                                         correlation_id="cart-7")  # fmt: skip
                    while len(done) < n + 1 and n % 50 != 3:
                        conn.drain_events(timeout=5)
                while len(done) < MESSAGES:
                    conn.drain_events(timeout=5)

    def pool(self) -> None:
        with Connection(self.url) as conn:
            pool = conn.Pool(limit=2)
            stop = time.monotonic() + 1.5

            def work() -> None:
                while time.monotonic() < stop:
                    with pool.acquire(block=True, timeout=5):
                        time.sleep(0.01)
                    time.sleep(0.004)

            threads = [threading.Thread(target=work) for _ in range(4)]
            started = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                points = self.metrics()
                self.pool_samples.append(
                    (
                        time.monotonic() - started,
                        {
                            count: sum(p.value for p in points.get(f"brokerpool.pool.{count}", []))
                            for count in ("in_use", "idle", "waiting")
                        },
                    )
                )
                time.sleep(0.02)
            for t in threads:
                t.join()
            pool.close()

    def __enter__(self) -> Run:
        broker.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        return self

    def __exit__(self, *exc: object) -> None:
        broker.uninstrument()


# -- drawing ------------------------------------------------------------------------------

COLOURS = {"shop": "#8c6bb1", "publish": "#2b8cbe", "process": "#41ab5d", "ack": "#fd8d3c"}


def _colour(span: ReadableSpan) -> str:
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    if scope == "shop":
        return COLOURS["shop"]
    return COLOURS.get(span.name.split()[0], "#969696")


def draw_trace(run: Run, path: Path) -> None:
    spans = list(run.exporter.get_finished_spans())
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    # A trace whose message was processed once (not the requeued ones), from the middle.
    whole = [t for t in by_trace.values() if len(t) == 5]
    trace_spans = sorted(whole[len(whole) // 2], key=lambda s: s.start_time or 0)
    ids = {s.context.span_id: s for s in trace_spans}

    def depth(span: ReadableSpan) -> int:
        parent = span.parent.span_id if span.parent else None
        return 0 if parent not in ids else 1 + depth(ids[parent])

    start = min(s.start_time or 0 for s in trace_spans)
    total = (max(s.end_time or 0 for s in trace_spans) - start) / 1e6
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for row, span in enumerate(trace_spans):
        begin = ((span.start_time or 0) - start) / 1e6
        length = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        ax.barh(row, max(length, total / 300), left=begin, color=_colour(span), height=0.6)
        kind = span.kind.name.lower()
        ax.text(begin, row - 0.42, f"{'  ' * depth(span)}{span.name}  ({kind}, {length:.3f} ms)",
                fontsize=8, va="bottom")  # fmt: skip
    ax.set_yticks([])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the trace began")
    trace_id = f"{trace_spans[0].context.trace_id:032x}"
    ax.set_title(f"One order's trace across {run.url.split(':')[0]}:// (trace {trace_id[:16]}...)",
                 fontsize=10)  # fmt: skip
    ax.spines[["top", "right", "left"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _histogram(ax: Any, point: HistogramDataPoint, title: str) -> None:
    bounds = [b * 1000 for b in point.explicit_bounds]
    counts = list(point.bucket_counts)
    labels = [f"≤{b:g}" for b in bounds] + [f">{bounds[-1]:g}"]
    used = [i for i, c in enumerate(counts) if c] or [0]
    lo, hi = used[0], used[-1] + 1
    ax.bar(range(hi - lo), counts[lo:hi], color="#2b8cbe")
    ax.set_xticks(range(hi - lo), labels[lo:hi], rotation=45, fontsize=7)
    ax.set_xlabel("ms")
    ax.set_title(f"{title}\n(n={point.count}, mean {point.sum / point.count * 1000:.2f} ms)",
                 fontsize=9)  # fmt: skip


def draw_metrics(run: Run, path: Path) -> None:
    points = run.metrics()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    publish = points["messaging.client.operation.duration"][0]
    _histogram(axes[0][0], publish, "messaging.client.operation.duration (publish + confirm)")
    process = points["messaging.process.duration"][0]
    _histogram(axes[0][1], process, "messaging.process.duration")
    ax = axes[1][0]
    times = [t for t, _ in run.pool_samples]
    lines = (("in_use", "#2b8cbe", 4), ("idle", "#41ab5d", 2), ("waiting", "#e34a33", 1.2))
    for count, colour, width in lines:
        ax.step(times, [s[count] for _, s in run.pool_samples], where="post", label=count,
                color=colour, linewidth=width)  # fmt: skip
    waits = points.get("brokerpool.pool.wait.duration", [])
    waited = sum(p.count for p in waits)
    mean = sum(p.sum for p in waits) / waited * 1000 if waited else 0.0
    ax.set_title(f"brokerpool.pool.* gauges, 4 threads on limit=2\n"
                 f"({waited} waits, mean wait {mean:.1f} ms)", fontsize=9)  # fmt: skip
    ax.set_xlabel("seconds")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    names = [
        "messaging.client.sent.messages",
        "messaging.client.consumed.messages",
        "brokerpool.consumer.acks",
        "brokerpool.consumer.rejects",
        "brokerpool.consumer.redeliveries",
        "brokerpool.connection.connects",
    ]
    values = [sum(p.value for p in points.get(name, [])) for name in names]
    ax.barh(range(len(names)), values, color="#8c6bb1")
    ax.set_yticks(range(len(names)), [n.split(".", 1)[1] for n in names], fontsize=8)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:g}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_title("counters after the run", fontsize=9)
    fig.suptitle(f"brokerpool metrics from one run on {run.url.split(':')[0]}://", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    """Run the workload against ``argv[0]`` (or the default URL) and draw both pictures."""
    url = argv[0] if argv else _default_url()
    IMAGES.mkdir(exist_ok=True)
    with Run(url) as run:
        run.messages()
        run.pool()
    draw_trace(run, IMAGES / "observability-trace.png")
    draw_metrics(run, IMAGES / "observability-metrics.png")
    print(f"wrote {IMAGES / 'observability-trace.png'} and observability-metrics.png ({url})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
