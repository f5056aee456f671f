"""Heartbeats keep a connection alive while its owner is busy in user code."""

from __future__ import annotations

import time

import pytest

from broker import Connection


@pytest.mark.timeout(60)
def test_owner_busy_for_ten_intervals_keeps_its_channel(rabbitmq_url: str) -> None:
    connects: list[Connection] = []
    conn = Connection(rabbitmq_url, heartbeat=2, on_connect=connects.append)
    channel = conn.channel()
    queue = channel.queue_declare(queue="", exclusive=True).queue

    time.sleep(20)  # user code that never calls the library

    channel.basic_publish(channel.prepare_message(b"still here"), exchange="", routing_key=queue)
    got = channel.basic_get(queue=queue, no_ack=True)
    assert got is not None and got.body == b"still here"
    with pytest.raises(TimeoutError):  # not a (false) HeartbeatTimeout
        conn.drain_events(timeout=1)
    assert len(connects) == 1 and conn.connected
    conn.close()
