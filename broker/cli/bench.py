"""``brokerpool bench``: a quick throughput run against one broker.

Three phases on one unique, auto-deleted queue: unconfirmed publishes,
publishes with pipelined confirms (``producer.confirms()``), then consuming
and acknowledging every message published. For side-by-side comparisons
with kombu and py-amqp use ``python -m bench`` (``make bench``).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from broker.cli.arguments import MAX_SHORT, integer
from broker.cli.support import add_timeout_argument, connect
from broker.connection.connection import Connection
from broker.errors import OperationalError

__all__ = ["Progress", "add_bench_parser", "run_bench"]


class Progress:
    """A one-line progress display on stderr, shown only for phases longer than a second.

    It redraws its line with ``\\r``, which only a terminal understands: on
    a pipe or a file (a CI log) it draws nothing. Quick phases print nothing
    either, so scripted runs stay quiet; redraws are limited to ten a second
    so the display never slows the measurement much.

    Args:
        label: what is counted.
        total: how many there will be.
        stream: where to draw (default: stderr).
        clock: seconds, monotonic.
        delay: seconds before the first draw.
        interactive: whether ``stream`` is a terminal; ``None`` asks it (``isatty()``).
    """

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        delay: float = 1.0,
        interactive: bool | None = None,
    ) -> None:
        self.label, self.total = label, total
        self._stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = self._stream.isatty()
        self._interactive = interactive
        self._clock = clock
        self._started = clock()
        self._delay = delay
        self._next_draw = self._started + delay
        self._drawn = False

    def __repr__(self) -> str:
        mode = "terminal" if self._interactive else "silent"
        return f"<Progress {self.label!r} total={self.total} {mode} drawn={self._drawn}>"

    def update(self, done: int) -> None:
        """Report that ``done`` of ``total`` are finished (cheap when nothing is drawn)."""
        if not self._interactive:
            return
        now = self._clock()
        if now < self._next_draw:
            return
        self._next_draw = now + 0.1
        self._drawn = True
        pct = 100 * done / self.total if self.total else 100
        self._stream.write(f"\r{self.label}: {done}/{self.total} ({pct:3.0f}%)")
        self._stream.flush()

    def finish(self) -> None:
        """End the line if anything was drawn."""
        if self._drawn:
            self._stream.write(f"\r{self.label}: {self.total}/{self.total} (100%)\n")
            self._stream.flush()


def add_bench_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool bench``."""
    p = sub.add_parser(
        "bench",
        parents=[parent],
        help="a quick publish / confirmed publish / consume+ack throughput run",
        description=(
            "Measure publish, confirmed publish (pipelined) and consume+ack throughput on "
            "one broker. For comparisons with kombu and py-amqp run `python -m bench`."
        ),
    )
    p.add_argument("url", nargs="?", default="memory://", help="broker URL (default: memory://)")
    p.add_argument(
        "-n", "--messages", type=integer(1), default=10000, help="per phase (default: 10000)"
    )
    p.add_argument("-s", "--size", type=integer(0), default=100, help="body bytes (default: 100)")
    p.add_argument(
        "--prefetch",
        type=integer(1, MAX_SHORT),
        default=100,
        help="consumer prefetch, 1 to 65535 (default: 100)",
    )
    add_timeout_argument(p, "seconds for connecting (default: 5)")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the three phases and print a summary table."""
    body = b"x" * args.size
    n = args.messages
    conn = connect([args.url], timeout=args.timeout)
    rows: list[tuple[str, int, float]] = []
    with conn:
        channel = conn.channel()
        queue = f"brokerpool-bench-{uuid.uuid4().hex[:8]}"
        channel.queue_declare(queue=queue, auto_delete=True)
        try:
            rows.append(("publish", n, _publish(conn, queue, body, n, confirm=False)))
            rows.append(("publish, pipelined confirms", n, _publish(conn, queue, body, n, True)))
            rows.append(("consume + ack", 2 * n, _consume(conn, queue, 2 * n, args.prefetch)))
        finally:
            channel.queue_delete(queue=queue)
            channel.close()
    sys.stdout.write(f"brokerpool bench on {conn.as_uri()}: {n} messages of {args.size} B\n")
    sys.stdout.write(f"{'phase':30} {'messages':>9} {'seconds':>9} {'msg/s':>10}\n")
    for name, count, seconds in rows:
        rate = count / max(seconds, 1e-9)
        sys.stdout.write(f"{name:30} {count:9d} {seconds:9.3f} {rate:10,.0f}\n")
    return 0


def _publish(conn: Connection, queue: str, body: bytes, n: int, confirm: bool) -> float:
    producer = conn.Producer(routing_key=queue)
    progress = Progress("publish (confirmed)" if confirm else "publish", n)
    started = time.perf_counter()
    if confirm:
        with producer.confirms(timeout=max(30.0, n / 500)):
            for i in range(n):
                producer.publish(body)
                progress.update(i + 1)
    else:
        for i in range(n):
            producer.publish(body)
            progress.update(i + 1)
    elapsed = time.perf_counter() - started
    progress.finish()
    producer.close()
    return elapsed


def _consume(conn: Connection, queue: str, n: int, prefetch: int) -> float:
    channel = conn.channel()
    channel.basic_qos(0, prefetch, False)
    got = 0
    progress = Progress("consume + ack", n)

    def on_message(message: Any) -> None:
        nonlocal got
        channel.basic_ack(message.delivery_tag)
        got += 1
        progress.update(got)

    started = time.perf_counter()
    channel.basic_consume(queue=queue, callback=on_message)
    deadline = time.monotonic() + max(30.0, n / 500)
    while got < n:
        if time.monotonic() > deadline:
            raise OperationalError(f"consumed only {got} of {n} messages from {queue!r} in time")
        conn.drain_events(timeout=5)
    elapsed = time.perf_counter() - started
    progress.finish()
    channel.close()
    return elapsed
