"""``python -m bench.redis_drain_batch``: the cost of one Redis delivery per ``drain_events``.

kombu's Redis transport hands out one message per ``Connection.drain_events()``
call; brokerpool's dispatches what one delivery call took, up to ``max_batch``
messages per consumer (default 100). ``max_batch=1`` is kombu's behaviour, so
the two are measured side by side on the same Redis, in one run: a consumer
(with acks and prefetch 100, and with ``no_ack``) drains N 100-byte messages,
calling ``drain_events`` until all arrived. ``docs/migrating.rst`` quotes the
result. Not part of ``python -m bench``: it compares two settings of one
library, not libraries.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Sequence

from bench.cases.redis import DEFAULT_URL

BODY = b"x" * 100


def drain_rate(url: str, max_batch: int, n: int, no_ack: bool) -> tuple[float, int]:
    """Messages per second consuming ``n`` messages, and the ``drain_events`` calls it took."""
    import redis

    from broker import Connection, Consumer, Message, Queue

    prefix = f"bench-drain:{uuid.uuid4().hex[:8]}:"
    options = {"key_prefix": prefix, "max_batch": max_batch}
    try:
        with Connection(url, transport_options=options) as conn:
            queue = Queue("drain")
            queue(conn.default_channel).declare()
            producer = conn.Producer()
            for _ in range(n):
                producer.publish(BODY, routing_key="drain")
            received = 0

            def on_message(message: Message) -> None:
                nonlocal received
                received += 1
                if not no_ack:
                    message.ack()

            consumer = Consumer(
                conn,
                [Queue("drain", no_declare=True)],
                on_message=on_message,
                no_ack=no_ack,
                prefetch_count=None if no_ack else 100,
            )
            calls = 0
            started = time.perf_counter()
            with consumer:
                while received < n:
                    conn.drain_events(timeout=5)
                    calls += 1
            return n / (time.perf_counter() - started), calls
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_drain_batch", description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"Redis (default {DEFAULT_URL})")
    parser.add_argument("--messages", type=int, default=5000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per setting (median shown)")
    args = parser.parse_args(argv)
    print(f"{args.messages} messages per round, median of {args.rounds} rounds, {args.url}")
    for no_ack in (False, True):
        rates: dict[int, list[float]] = {100: [], 1: []}
        calls: dict[int, int] = {}
        for _ in range(args.rounds):
            for batch in rates:  # interleaved, so drift hits both settings alike
                rate, calls[batch] = drain_rate(args.url, batch, args.messages, no_ack)
                rates[batch].append(rate)
        batched, single = (statistics.median(rates[b]) for b in (100, 1))
        mode = "no_ack" if no_ack else "acks, prefetch 100"
        print(
            f"{mode:>20}: max_batch=100 {batched:9.0f} msg/s ({calls[100]} calls), "
            f"max_batch=1 {single:9.0f} msg/s ({calls[1]} calls): {batched / single:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
