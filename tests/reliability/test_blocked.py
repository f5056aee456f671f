"""connection.blocked / unblocked from a node under a memory alarm."""

from __future__ import annotations

import time

import pytest

from broker import Connection, Producer
from broker.errors import ConfirmTimeout, ConnectionBlockedTimeout
from tests.support.rabbitnode import RabbitNode
from tests.support.wait import drain_until


def _publish_once(conn: Connection, queue: str) -> None:
    ch = conn.default_channel
    ch.queue_declare(queue=queue, auto_delete=True)
    ch.basic_publish(ch.prepare_message(b"x"), exchange="", routing_key=queue)


def test_on_blocked_and_on_unblocked_fire(rabbit_node: RabbitNode, unique_name: str) -> None:
    events: list[str] = []
    conn = Connection(
        rabbit_node.url,
        on_blocked=lambda reason: events.append("blocked"),
        on_unblocked=lambda: events.append("unblocked"),
    )
    conn.connect()
    rabbit_node.set_memory_alarm(True)
    try:
        _publish_once(conn, unique_name)  # only a publishing connection is blocked
        drain_until(conn, lambda: "blocked" in events, 15)
        assert conn.is_blocked
    finally:
        rabbit_node.set_memory_alarm(False)
    drain_until(conn, lambda: "unblocked" in events, 15)
    assert events == ["blocked", "unblocked"] and not conn.is_blocked
    conn.close()


def test_blocked_longer_than_the_timeout_raises(rabbit_node: RabbitNode, unique_name: str) -> None:
    conn = Connection(rabbit_node.url, blocked_connection_timeout=1)
    conn.connect()
    rabbit_node.set_memory_alarm(True)
    try:
        _publish_once(conn, unique_name)
        drain_until(conn, lambda: conn.is_blocked, 15)
        start = time.monotonic()
        with pytest.raises(ConnectionBlockedTimeout):
            conn.drain_events(timeout=10)
        assert time.monotonic() - start < 5  # the 1 s blocked timeout, not the 10 s drain
        assert not conn.connected
    finally:
        rabbit_node.set_memory_alarm(False)
    conn.close()


def test_confirm_timeout_while_blocked_does_not_fail_over(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    lost: list[BaseException | None] = []
    conn = Connection(f"{a.url};{b.url}", on_close=lambda c, exc: lost.append(exc))
    producer = Producer(conn, confirm_publish=True)
    conn.default_channel.queue_declare(queue=unique_name, auto_delete=True)
    producer.publish(b"before", routing_key=unique_name)
    a.set_memory_alarm(True)
    try:
        start = time.monotonic()
        with pytest.raises(ConfirmTimeout):
            producer.publish(b"during", routing_key=unique_name, retry=True, confirm_timeout=2)
        assert time.monotonic() - start < 4
        assert conn.is_blocked
        assert conn.connected and conn.host == f"127.0.0.1:{a.port}" and lost == []
    finally:
        a.set_memory_alarm(False)
    drain_until(conn, lambda: not conn.is_blocked, 15)
    producer.publish(b"after", routing_key=unique_name)
    assert conn.host == f"127.0.0.1:{a.port}" and lost == []
    conn.close()
