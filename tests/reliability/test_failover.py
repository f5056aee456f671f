"""Failover when a node dies (kill -9) and when a link is cut or blackholed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from broker import Connection
from broker.errors import HeartbeatTimeout, RecoverableConnectionError
from tests.support.failover import publish_across_a_kill
from tests.support.faultproxy import FaultProxy
from tests.support.rabbitnode import RabbitNode


def test_kill_minus_9_during_autoretry_fails_over_to_the_other_node(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    conn = Connection(f"{a.url};{b.url}")
    elapsed, _ = publish_across_a_kill(conn, unique_name, a.port, b.port, a.kill)
    assert elapsed < 2.0
    print(f"\nfailover after kill -9: {elapsed * 1000:.1f} ms")
    conn.close()


def test_on_close_receives_the_error_of_a_cut_link(fault_proxy: Any, rabbitmq_url: str) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    closed: list[BaseException | None] = []
    conn = Connection(proxy.url_for(), on_close=lambda c, exc: closed.append(exc))
    channel = conn.channel()
    proxy.cut(rst=True)
    with pytest.raises(RecoverableConnectionError) as raised:
        conn.drain_events(timeout=10)  # the façade reads the reset and drops the link
    # The hook ran once, at once, with the very error the caller got.
    assert closed == [raised.value]
    assert not conn.connected
    with pytest.raises(RecoverableConnectionError):
        channel.queue_declare(queue="", exclusive=True)  # a channel of the cut link stays dead
    assert conn.default_channel.is_open  # reconnects: the proxy only cut the live link
    conn.close()
    assert closed == [raised.value, None]  # a clean close reports no error


def test_on_close_receives_the_error_a_channel_call_met_on_a_cut_link(
    fault_proxy: Any, rabbitmq_url: str
) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    closed: list[BaseException | None] = []
    conn = Connection(proxy.url_for(), on_close=lambda c, exc: closed.append(exc))
    channel = conn.channel()
    proxy.cut(rst=True)
    with pytest.raises(RecoverableConnectionError) as raised:
        channel.queue_declare(queue="", exclusive=True)  # the channel, not the façade, meets it
    assert closed == []  # the façade has not looked yet
    assert conn.default_channel.is_open  # its next call finds the link broken and reconnects
    assert closed == [raised.value]  # the hooks got the error that broke it, not None
    conn.close()
    assert closed == [raised.value, None]


def test_blackholed_broker_is_detected_then_ensure_connection_fails_over(
    fault_proxy: Any, rabbitmq_url: str
) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    closed: list[BaseException | None] = []
    conn = Connection(
        f"{proxy.url_for()};{rabbitmq_url}",
        heartbeat=2,
        on_close=lambda c, exc: closed.append(exc),
    )
    conn.connect()
    assert conn.host == f"127.0.0.1:{proxy.port}"

    proxy.blackhole()
    start = time.monotonic()
    with pytest.raises(HeartbeatTimeout):
        conn.drain_events(timeout=20)
    detected = time.monotonic() - start
    assert detected < 5.0
    assert len(closed) == 1 and isinstance(closed[0], HeartbeatTimeout)

    start = time.monotonic()
    conn.ensure_connection(max_retries=2, interval_start=0.1)
    assert conn.host == "127.0.0.1:5672" and conn.connected
    assert time.monotonic() - start < 1.0
    print(f"\nblackhole detected after {detected:.2f} s at heartbeat=2")
    conn.close()
