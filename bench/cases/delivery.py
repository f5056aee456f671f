"""What every publish case shares: a queue the broker really fills, and a clock that waits for it.

A publish loop that returns has only handed its frames to the socket (or, with
confirms, had them confirmed); the figure counts once the broker holds every
message. So each publish case publishes to a queue of its own with no length
limit, purged before each round (untimed), and the timed section ends when a
passive ``queue.declare`` on a separate connection counts all N messages in it.
A count short of N after :data:`DELIVERY_TIMEOUT` seconds, or above N, fails
that library's figure instead of reporting a rate for messages that never
arrived (or arrived twice).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases.common import amqp_connection, unique_name
from bench.harness import throughput

__all__ = ["DELIVERY_TIMEOUT", "DeliveryQueue", "delivery_queue", "repeat", "timed_delivery"]

#: Seconds the broker has to show every published message in the queue.
DELIVERY_TIMEOUT = 60.0
#: Seconds between two counts: short next to a round (10,000 messages take
#: 0.2 s and more), long enough not to load the broker while it catches up.
_POLL = 0.001


class DeliveryQueue:
    """A queue with no length limit, and a way to count what the broker holds in it.

    Args:
        channel: a raw py-amqp channel of a connection used only for counting.
        name: the queue, already declared.
    """

    def __init__(self, channel: Any, name: str) -> None:
        self._channel = channel
        self.name = name

    def __repr__(self) -> str:
        return f"<DeliveryQueue {self.name!r} holds={self.count()}>"

    def count(self) -> int:
        """Messages the broker holds in the queue now."""
        ok = self._channel.queue_declare(queue=self.name, passive=True)
        return int(ok.message_count)

    def purge(self) -> None:
        """Empty the queue (before a round, outside the timed section)."""
        self._channel.queue_purge(queue=self.name)

    def wait_for(self, n: int, timeout: float = DELIVERY_TIMEOUT) -> None:
        """Return once the broker holds exactly ``n`` messages.

        Raises:
            TimeoutError: fewer than ``n`` after ``timeout`` seconds.
            RuntimeError: more than ``n`` (a message published twice).
        """
        deadline = time.monotonic() + timeout
        while True:
            held = self.count()
            if held == n:
                return
            if held > n:
                raise RuntimeError(f"{self.name!r} holds {held} messages; {n} were published")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name!r} holds {held} of the {n} messages published after {timeout:g} s"
                )
            time.sleep(_POLL)


@contextlib.contextmanager
def delivery_queue(url: str, case: str) -> Iterator[DeliveryQueue]:
    """A unique, unlimited, transient queue on the broker at ``url``; deleted afterwards."""
    conn = amqp_connection(url)
    try:
        channel = conn.channel()
        name = unique_name(case)
        channel.queue_declare(queue=name, durable=False, auto_delete=False)
        try:
            yield DeliveryQueue(channel, name)
        finally:
            with contextlib.suppress(Exception):
                channel.queue_delete(queue=name)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def timed_delivery(queue: DeliveryQueue, n: int, publish_all: Callable[[], None]) -> float:
    """Messages per second from the first publish until the broker holds all ``n``.

    ``publish_all()`` publishes the ``n`` messages to ``queue``; the queue is
    purged first, outside the timed section.
    """
    queue.purge()
    started = time.perf_counter()
    publish_all()
    queue.wait_for(n)
    return throughput(n, time.perf_counter() - started)


def repeat(n: int, publish: Callable[[], object]) -> Callable[[], None]:
    """``publish_all`` for :func:`timed_delivery` that calls ``publish()`` ``n`` times."""

    def publish_all() -> None:
        for _ in range(n):
            publish()

    return publish_all
