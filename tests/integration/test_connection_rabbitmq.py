"""Connection against the real RabbitMQ on 127.0.0.1:5672 and local fake peers.

Covers the Foundation and retry promises that need no extra nodes:
bounded connects, failover ordering, auth never retried, attempt counting.
"""

from __future__ import annotations

import socket
import time

import pytest

from broker import Connection
from broker.errors import (
    AuthenticationError,
    NotFound,
    OperationalError,
    RecoverableConnectionError,
)
from tests.support.net import ClosingServer, SilentServer, free_port

SECRET = "s3cr3t-Pa55"


def test_connect_channel_declare_publish_get(rabbitmq_url: str, unique_name: str) -> None:
    with Connection(rabbitmq_url) as conn:
        ch = conn.default_channel
        ch.queue_declare(queue=unique_name, auto_delete=True)
        msg = ch.prepare_message(
            b"payload", content_type="text/plain", application_headers={"k": 1}
        )
        ch.basic_publish(msg, exchange="", routing_key=unique_name)
        got = ch.basic_get(queue=unique_name, no_ack=True)
        assert got is not None and got.body == b"payload"
        assert got.properties["application_headers"] == {"k": 1}
        assert conn.server_properties["product"] == "RabbitMQ"
        assert conn.publisher_confirms and conn.basic_nack
        assert conn.consumer_cancel_notify and conn.exchange_exchange_bindings
        ch.queue_delete(queue=unique_name)


def test_drain_events_timeout_holds_while_heartbeats_arrive(rabbitmq_url: str) -> None:
    with Connection(rabbitmq_url, heartbeat=1) as conn:
        conn.connect()
        assert conn.get_heartbeat_interval() == 1
        start = time.monotonic()
        with pytest.raises(socket.timeout):
            conn.drain_events(timeout=2)
        # Not before the timeout; and a timeout restarted by every heartbeat
        # frame (py-amqp's own) would never fire at all, so a bound far above
        # 2 s is enough to catch that.
        assert 1.8 <= time.monotonic() - start < 10


def test_wrong_password_fails_fast_even_with_unbounded_retries(rabbitmq_url: str) -> None:
    conn = Connection(f"amqp://guest:{SECRET}@127.0.0.1:5672//")
    start = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        conn.ensure_connection(max_retries=None, timeout=float("inf"))
    assert time.monotonic() - start < 1.0
    assert SECRET not in str(info.value) and "guest:**@127.0.0.1" in str(info.value)


def test_wrong_password_on_implicit_connect_is_not_retried(rabbitmq_url: str) -> None:
    errors: list[BaseException] = []
    conn = Connection(
        f"amqp://guest:{SECRET}@127.0.0.1:5672//", on_open_error=lambda c, e: errors.append(e)
    )
    start = time.monotonic()
    with pytest.raises(AuthenticationError):
        conn.default_channel  # noqa: B018
    assert time.monotonic() - start < 1.0
    assert len(errors) == 1 and isinstance(errors[0], AuthenticationError)


def test_refused_port_fails_in_milliseconds() -> None:
    conn = Connection(f"amqp://127.0.0.1:{free_port()}//")
    start = time.monotonic()
    with pytest.raises(OperationalError) as info:
        conn.ensure_connection(max_retries=0)
    assert time.monotonic() - start < 0.2
    assert isinstance(info.value.__cause__, RecoverableConnectionError)


def test_dead_then_live_alternate_connects_quickly(rabbitmq_url: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    conn = Connection(f"{dead};{rabbitmq_url}")
    start = time.monotonic()
    conn.connect()
    assert time.monotonic() - start < 0.5
    assert conn.host == "127.0.0.1:5672" and conn.connected
    conn.close()


def test_max_retries_two_means_exactly_three_attempts() -> None:
    intervals: list[float] = []
    with ClosingServer() as server:
        conn = Connection(server.url, connect_timeout=2)
        with pytest.raises(OperationalError) as info:
            conn.ensure_connection(
                errback=lambda exc, interval: intervals.append(interval),
                max_retries=2,
                interval_start=0.05,
                interval_step=0.05,
                interval_max=0.1,
            )
        time.sleep(0.1)  # let the server thread count the last accept
        assert server.accepted == 3
    assert intervals == [0.05, 0.1]
    message = str(info.value)
    assert "after 3 attempts" in message and f"127.0.0.1:{server.port}" in message


def test_timeout_cuts_a_hung_connect_attempt() -> None:
    with SilentServer() as server:
        conn = Connection(server.url, connect_timeout=10)
        start = time.monotonic()
        with pytest.raises(OperationalError, match="timeout of 1 s"):
            conn.ensure_connection(timeout=1, interval_start=0.2, interval_max=0.2)
        assert time.monotonic() - start < 1.1 + 0.2


def test_timeout_with_fast_failures_returns_within_the_deadline() -> None:
    with ClosingServer() as server:
        conn = Connection(server.url)
        start = time.monotonic()
        with pytest.raises(OperationalError):
            conn.ensure_connection(timeout=1, interval_start=0.3, interval_step=0, interval_max=0.3)
        elapsed = time.monotonic() - start
    assert elapsed < 1.1


def test_round_robin_tries_each_host_in_order_within_a_round() -> None:
    tried: list[str] = []
    with ClosingServer() as a, ClosingServer() as b:
        conn = Connection(f"{a.url};{b.url}", connect_timeout=1)

        def errback(exc: BaseException, interval: float) -> None:
            tried.append(f"{conn.host} {interval}")

        with pytest.raises(OperationalError):
            conn.ensure_connection(
                errback=errback, max_retries=3, interval_start=0.05, interval_step=0
            )
    # errback sees the host to be tried next and the pause before it: no
    # pause inside a round, the backoff applies only when a round ends.
    assert tried == [
        f"127.0.0.1:{b.port} 0.0",
        f"127.0.0.1:{a.port} 0.05",
        f"127.0.0.1:{b.port} 0.0",
    ]


def test_channel_error_is_translated_and_connection_survives(
    rabbitmq_url: str, unique_name: str
) -> None:
    with Connection(rabbitmq_url) as conn:
        with conn.channel() as ch, pytest.raises(NotFound):
            ch.queue_declare(queue=unique_name, passive=True)
        assert conn.connected
        with conn.channel() as ch2:
            ch2.queue_declare(queue=unique_name, auto_delete=True)


def test_a_dead_connection_is_reopened_by_the_next_implicit_call(rabbitmq_url: str) -> None:
    opened: list[Connection] = []
    conn = Connection(rabbitmq_url, on_connect=opened.append)
    conn.connect()
    first = conn.transport_connection
    assert first is not None
    first.teardown()
    assert not conn.verify()
    conn.default_channel.queue_declare(queue="", exclusive=True)
    assert conn.transport_connection is not first and len(opened) == 2
    conn.close()
