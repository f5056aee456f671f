"""What OpenTelemetry instrumentation costs: off, on with no-op providers, on with the SDK.

Not a library-against-library case like the others (it is not in
``bench.cases._MODULES``): it measures one library in four states, in one
run, rounds interleaved in a shuffled order so that drift on a shared machine
spreads over all of them:

* ``baseline`` -- the code before the hooks existed (``--baseline REF``, a git
  ref extracted with ``git archive`` into a temporary directory);
* ``off`` -- this tree, not instrumented: every hot path tests one module
  attribute against ``None``;
* ``noop`` -- ``broker.instrument()`` with the API's no-op tracer and meter
  providers (spans are made and dropped at once, headers get nothing);
* ``sdk`` -- the OpenTelemetry SDK: every span recorded (to an exporter that
  discards it) and every metric aggregated.

Workloads: an unconfirmed 100-byte publish on memory:// and, when RabbitMQ
answers, on amqp:// (to a routing key no queue is bound to, so the broker
drops them), and a pool acquire + release from one thread (a
:class:`pools.ConnectionPool` of memory:// connections: bookkeeping only).
Each round is a fresh interpreter running one workload for ``--seconds`` in
slices of 1,000 operations and reporting its fastest slice (as ``timeit``
reports its minimum: on a shared machine the slow slices measure the
neighbours).

Run ``python -m bench.cases.otel_cost --baseline <ref>``; it prints a Markdown
table of the medians and of each state's ratio to ``baseline`` (and to
``off``), and writes it to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
STATES = ("baseline", "off", "noop", "sdk")
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"

#: Runs in a fresh interpreter whose sys.path starts with the tree under test.
WORKER = r"""
import sys, time
workload, state, seconds, url = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if state == "noop":
    import broker
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider
    broker.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
elif state == "sdk":
    import broker
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    broker.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
from broker import Connection, Producer

def measure(step):
    # The best slice of the round, like timeit's minimum: on a shared machine the
    # slowest slices measure the neighbours, the fastest one the code.
    for _ in range(2000):
        step()
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        for _ in range(1000):
            step()
        now = time.perf_counter()
        best = max(best, 1000 / (now - started))
        if now >= deadline:
            return best

with Connection(url) as conn:
    if workload == "pool":
        pool = conn.Pool(limit=10)
        acquire = pool.acquire
        print(measure(lambda: acquire().release()))
        pool.close()
    else:
        publish, body = Producer(conn, routing_key="bench-otel-cost-nobody").publish, b"x" * 100
        print(measure(lambda: publish(body)))
"""


@contextmanager
def _baseline_tree(ref: str) -> Iterator[Path]:
    """The packages at git ``ref``, extracted into a temporary directory."""
    where = Path(tempfile.mkdtemp(prefix="bp-otel-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "broker", "transports", "pools"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


def _round(tree: Path, workload: str, state: str, seconds: float) -> float:
    """One round in a fresh interpreter; tried up to three times (a shared broker may stall)."""
    url = RABBITMQ_URL if workload == "publish amqp" else "memory://"
    kind = "pool" if workload == "pool" else "publish"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for attempt in range(3):
        out = subprocess.run(
            [sys.executable, "-c", WORKER, kind, state, str(seconds), url],
            cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if out.returncode == 0:
            return float(out.stdout.strip().splitlines()[-1])
        last = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"\n{workload}/{state} attempt {attempt + 1} failed: {last[0]}", file=sys.stderr)
    raise RuntimeError(f"{workload}/{state}: three rounds failed in a row")


def _table(results: dict[tuple[str, str], list[float]], workloads: list[str]) -> str:
    """Per state: the median over the rounds (of each round's fastest slice), as ratios."""
    lines = [
        "| workload | state | ops/s | vs baseline | vs off |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for workload in workloads:
        base = statistics.median(results[workload, "baseline"])
        off = statistics.median(results[workload, "off"])
        for state in STATES:
            value = statistics.median(results[workload, state])
            lines.append(
                f"| {workload} | {state} | {value:,.0f} | {value / base:.3f} | {value / off:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table (and write it to ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m bench.cases.otel_cost", description=__doc__)
    p.add_argument("--baseline", required=True, help="git ref of the code before the hooks")
    p.add_argument("--rounds", type=int, default=7, help="rounds per workload and state")
    p.add_argument("--seconds", type=float, default=0.5, help="seconds of work per round")
    p.add_argument("--out", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    workloads = ["publish memory", "pool"]
    if _rabbitmq_up():
        workloads.insert(1, "publish amqp")
    plan = [(w, s) for w in workloads for s in STATES for _ in range(args.rounds)]
    random.shuffle(plan)
    results: dict[tuple[str, str], list[float]] = {(w, s): [] for w in workloads for s in STATES}
    with _baseline_tree(args.baseline) as baseline:
        for n, (workload, state) in enumerate(plan, 1):
            tree = baseline if state == "baseline" else ROOT
            results[workload, state].append(_round(tree, workload, state, args.seconds))
            print(f"\r{n}/{len(plan)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    table = _table(results, workloads)
    print(table)
    if args.out is not None:
        args.out.write_text(
            f"OpenTelemetry cost, {args.rounds} rounds of {args.seconds:g} s per workload and "
            f"state, baseline {args.baseline} (python -m bench.cases.otel_cost).\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
