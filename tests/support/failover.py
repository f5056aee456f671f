"""The kill -9 failover scenario, shared by the RabbitMQ and Redis reliability tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from broker import Connection

__all__ = ["publish_across_a_kill"]


def publish_across_a_kill(
    conn: Connection, queue: str, first_port: int, second_port: int, kill: Callable[[], None]
) -> tuple[float, Any]:
    """Publish through ``conn.autoretry`` on the first node, ``kill`` it, publish again.

    Asserts that the first publish went to ``first_port`` and the second, on a
    fresh channel, to ``second_port``, each after exactly one connect.

    Returns:
        ``(seconds the second publish took, the channel it used)``.
    """
    connects: list[str] = []
    conn.on_connect.append(lambda c: connects.append(c.host))

    def publish(body: bytes, channel: Any) -> str:
        channel.queue_declare(queue=queue, auto_delete=False)
        channel.basic_publish(channel.prepare_message(body), exchange="", routing_key=queue)
        return conn.host

    op = conn.autoretry(publish, max_retries=3, interval_start=0.1, interval_max=0.1)
    host, first_channel = op(b"before")
    assert host == f"127.0.0.1:{first_port}"

    kill()
    start = time.monotonic()
    host, channel = op(b"after")
    elapsed = time.monotonic() - start

    assert host == f"127.0.0.1:{second_port}"
    assert channel is not first_channel and channel.is_open
    assert connects == [f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}"]
    return elapsed, channel
