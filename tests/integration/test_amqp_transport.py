"""The py-amqp transport against the real RabbitMQ on 127.0.0.1:5672.

Covers: connecting and the channel contract, negotiated settings, bounded
waits (drain_events, connect, close), error translation at the transport
boundary, heartbeats and dead-peer detection (through a loopback fault
proxy), publisher confirms/returns hooks, and that passwords never show.
Parameter validation (no I/O) is at the end.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

import transports
from broker.errors import (
    AccessRefused,
    AuthenticationError,
    ChannelLimitExceeded,
    ConfigurationError,
    HeartbeatTimeout,
    IrrecoverableConnectionError,
    NotFound,
    PreconditionFailed,
    RecoverableChannelError,
    RecoverableConnectionError,
)
from tests.support.faultproxy import FaultProxy
from tests.support.wait import drain_until
from transports.amqp.transport import AmqpConnection, Transport
from transports.base import Channel, ConnectionParams, QueueDeclareOk, RawMessage

SECRET = "s3cr3t-Pa55"

Connect = Callable[..., AmqpConnection]


@pytest.fixture
def broker_address(rabbitmq_url: str) -> tuple[str, int]:
    parts = urlsplit(rabbitmq_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def connect(broker_address: tuple[str, int]) -> Iterator[Connect]:
    """Open transport connections (to the test broker unless told otherwise); torn down after."""
    opened: list[AmqpConnection] = []

    def make(**overrides: Any) -> AmqpConnection:
        host, port = broker_address
        fields = {"hostname": host, "port": port, "userid": "guest", "password": "guest"}
        conn = Transport().connect(ConnectionParams(**{**fields, **overrides}))
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.teardown()


@pytest.fixture
def proxy(broker_address: tuple[str, int]) -> Iterator[FaultProxy]:
    """A loopback fault proxy in front of the test broker."""
    with FaultProxy(*broker_address) as fault_proxy:
        yield fault_proxy


# -- the registry and the basics -----------------------------------------------------


def test_registry_maps_amqp_schemes_to_this_transport_and_its_facts() -> None:
    assert all(transports.resolve(s) is Transport for s in ("amqp", "pyamqp", "amqps"))
    facts = (Transport.name, Transport.default_port, Transport.default_ssl_port)
    assert facts == ("amqp", 5672, 5671)
    caps = Transport.capabilities
    assert caps.heartbeats and caps.publisher_confirms and caps.ssl
    assert caps.exchange_types == {"direct", "topic", "fanout", "headers"}


def test_declare_publish_and_get_round_trip(connect: Connect, unique_name: str) -> None:
    conn = connect()
    with conn.channel() as channel:
        assert isinstance(channel, Channel)
        ok = channel.queue_declare(queue=unique_name, auto_delete=True)
        assert ok == QueueDeclareOk(unique_name, 0, 0)
        message = channel.prepare_message(b"hello", content_type="text/plain", priority=3)
        channel.basic_publish(message, exchange="", routing_key=unique_name)

        got = channel.basic_get(queue=unique_name, no_ack=False)
        assert isinstance(got, RawMessage)
        assert got.body == b"hello"
        assert got.properties["content_type"] == "text/plain"
        assert got.delivery_info["routing_key"] == unique_name
        channel.basic_ack(got.delivery_tag)
        assert channel.basic_get(queue=unique_name) is None
        assert channel.queue_delete(queue=unique_name) == 0
    assert not channel.is_open
    assert conn.is_open and conn.verify()


def test_consume_delivers_through_drain_events(connect: Connect, unique_name: str) -> None:
    conn = connect()
    channel = conn.channel()
    channel.queue_declare(queue=unique_name, auto_delete=True)
    received: list[Any] = []
    tag = channel.basic_consume(queue=unique_name, callback=received.append)
    channel.basic_publish(channel.prepare_message(b"\x00bytes"), routing_key=unique_name)

    conn.drain_events(timeout=5)

    assert [m.body for m in received] == [b"\x00bytes"]  # bodies stay bytes
    assert received[0].delivery_info["consumer_tag"] == tag
    channel.basic_nack(received[0].delivery_tag, requeue=True)
    drain_until(conn, lambda: len(received) == 2)
    assert received[1].delivery_info["redelivered"] is True
    channel.basic_ack(received[1].delivery_tag)
    channel.basic_cancel(tag)


def test_negotiated_settings_are_exposed(connect: Connect) -> None:
    conn = connect(heartbeat=7, transport_options={"frame_max": 8192, "channel_max": 3})
    assert conn.heartbeat == 7.0
    assert conn.frame_max == 8192
    assert conn.channel_max == 3
    assert conn.server_properties["product"] == "RabbitMQ"
    assert connect().heartbeat == 0.0  # off unless asked for


def test_large_body_is_split_into_frames_of_the_negotiated_size(
    connect: Connect, unique_name: str
) -> None:
    conn = connect(transport_options={"frame_max": 4096})
    channel = conn.channel()
    channel.queue_declare(queue=unique_name, auto_delete=True)
    body = bytes(range(256)) * 100
    channel.basic_publish(channel.prepare_message(body), routing_key=unique_name)
    got = channel.basic_get(queue=unique_name, no_ack=True)
    assert got is not None and got.body == body


def test_channel_max_is_enforced_without_breaking_the_connection(connect: Connect) -> None:
    conn = connect(transport_options={"channel_max": 2})
    first, _second = conn.channel(), conn.channel()
    with pytest.raises(ChannelLimitExceeded, match="all 2 channels"):
        conn.channel()
    first.close()
    assert conn.channel().is_open


def test_repr_shows_state_and_hides_the_password(connect: Connect) -> None:
    conn = connect(password="guest")
    channel = conn.channel()
    assert repr(conn) == "<AmqpConnection amqp://guest:**@127.0.0.1:5672// open heartbeat=0>"
    assert repr(channel) == "<AmqpChannel id=1 open on amqp://guest:**@127.0.0.1:5672//>"
    conn.close()
    assert "closed" in repr(conn) and "closed" in repr(channel)


# -- drain_events is bounded in total ------------------------------------------------


def test_drain_events_times_out_in_total_while_heartbeats_keep_arriving(connect: Connect) -> None:
    conn = connect(heartbeat=1)
    frames_before = conn.driver.bytes_recv
    started = time.monotonic()
    with pytest.raises(socket.timeout, match="no event"):
        conn.drain_events(timeout=2)
    elapsed = time.monotonic() - started
    assert 1.8 <= elapsed <= 2.2
    # The broker sends a heartbeat every 0.5 s: they arrived but did not end the wait.
    assert conn.driver.bytes_recv - frames_before >= 2
    assert conn.is_open


def test_drain_events_with_zero_timeout_polls_once(connect: Connect) -> None:
    conn = connect()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0)
    assert time.monotonic() - started < 0.5


# -- connect failures -----------------------------------------------------------------


def test_wrong_password_raises_authentication_error_quickly(connect: Connect) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        connect(password=SECRET)
    assert time.monotonic() - started < 1.0
    err = caught.value
    assert err.reply_code == 403
    assert not isinstance(err, RecoverableConnectionError)  # never retried
    assert "amqp://guest:**@127.0.0.1:5672//" in str(err)
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert SECRET not in "".join(map(str, (err.__cause__, err.__context__)))


def test_refused_port_raises_recoverable_error_at_once(connect: Connect) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(RecoverableConnectionError, match=f"127.0.0.1:{port}.*refused"):
        connect(port=port)
    assert time.monotonic() - started < 0.5


def test_silent_listener_during_connect_times_out_after_connect_timeout(connect: Connect) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP handshake, never answers AMQP
        started = time.monotonic()
        with pytest.raises(RecoverableConnectionError, match="timed out"):
            connect(port=listener.getsockname()[1], connect_timeout=1)
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.6


def test_unknown_virtual_host_is_irrecoverable(connect: Connect) -> None:
    with pytest.raises(IrrecoverableConnectionError) as caught:
        connect(virtual_host="bp-no-such-vhost")
    assert not isinstance(caught.value, AuthenticationError)
    assert caught.value.reply_code == 530


# -- channel errors -------------------------------------------------------------------


def test_not_found_closes_only_the_channel(connect: Connect, unique_name: str) -> None:
    conn = connect()
    channel = conn.channel()
    with pytest.raises(NotFound) as caught:
        channel.queue_declare(queue=unique_name, passive=True)
    assert caught.value.reply_code == 404
    assert unique_name in str(caught.value) and "guest:**@" in str(caught.value)
    assert not channel.is_open
    with pytest.raises(RecoverableChannelError, match="is closed"):
        channel.queue_declare(queue=unique_name, passive=True)

    assert conn.is_open
    fresh = conn.channel()
    assert fresh.queue_declare(queue=unique_name, auto_delete=True).queue == unique_name


def test_other_channel_errors_map_to_their_classes(connect: Connect, unique_name: str) -> None:
    conn = connect()
    conn.channel().queue_declare(queue=unique_name, exclusive=True)
    with pytest.raises(PreconditionFailed) as caught:  # redeclared with other arguments
        conn.channel().queue_declare(unique_name, exclusive=True, arguments={"x-max-length": 1})
    assert caught.value.reply_code == 406
    with pytest.raises(AccessRefused) as caught:  # amq.* names are reserved
        conn.channel().queue_declare(queue=f"amq.{unique_name}")
    assert caught.value.reply_code == 403
    with pytest.raises(RecoverableChannelError) as caught:  # exclusive to another connection
        connect().channel().queue_declare(queue=unique_name, passive=True)
    assert caught.value.reply_code == 405


def test_async_channel_close_is_raised_from_drain_events(
    connect: Connect, unique_name: str
) -> None:
    conn = connect()
    channel = conn.channel()
    # Publishing is asynchronous: the broker's 404 arrives with the next read.
    channel.basic_publish(channel.prepare_message(b"x"), exchange=f"{unique_name}-missing")
    with pytest.raises(NotFound) as caught:
        conn.drain_events(timeout=5)
    assert not type(caught.value.__cause__).__module__.startswith("broker")  # raised from theirs
    assert not channel.is_open
    assert conn.is_open


def test_connection_level_error_is_translated_and_drops_the_connection(
    connect: Connect, unique_name: str
) -> None:
    conn = connect()
    with pytest.raises(IrrecoverableConnectionError) as caught:
        conn.channel().exchange_declare(unique_name, "no-such-type")
    assert caught.value.reply_code == 503  # COMMAND_INVALID closes the whole connection
    assert type(caught.value).__module__ == "broker.errors"
    assert not conn.is_open


# -- closing ------------------------------------------------------------------------------


def test_close_is_bounded_on_a_dead_peer(connect: Connect, proxy: FaultProxy) -> None:
    conn = connect(port=proxy.port)
    proxy.blackhole()
    started = time.monotonic()
    conn.close(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not conn.is_open and not conn.verify()


def test_teardown_is_safe_twice_and_after_close(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    conn.teardown()
    conn.teardown()
    conn.close()
    assert not conn.is_open and not channel.is_open
    with pytest.raises(RecoverableConnectionError, match="is closed"):
        conn.channel()
    with pytest.raises(RecoverableConnectionError):
        channel.queue_declare(queue="", exclusive=True)
    channel.close()  # never raises


def test_cut_link_is_translated_and_marks_the_connection_lost(
    connect: Connect, proxy: FaultProxy
) -> None:
    conn = connect(port=proxy.port)
    channel = conn.channel()
    proxy.cut()
    with pytest.raises(RecoverableConnectionError, match=f"127.0.0.1:{proxy.port}"):
        conn.drain_events(timeout=2)
    assert not conn.is_open and not channel.is_open
    conn.teardown()


def test_verify_sees_a_closed_peer_without_blocking(connect: Connect, proxy: FaultProxy) -> None:
    conn = connect(port=proxy.port)
    assert conn.verify()
    proxy.cut()
    deadline = time.monotonic() + 2
    while conn.verify() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not conn.verify()


# -- heartbeats -----------------------------------------------------------------------------


def test_silent_peer_raises_heartbeat_timeout_from_drain_events(
    connect: Connect, proxy: FaultProxy
) -> None:
    conn = connect(port=proxy.port, heartbeat=1)
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(HeartbeatTimeout, match="heartbeat=1 s"):
        conn.drain_events(timeout=None)  # would block forever without ticks
    assert time.monotonic() - started < 3.5
    assert not conn.is_open


def test_silent_peer_raises_heartbeat_timeout_from_a_blocking_channel_call(
    connect: Connect, proxy: FaultProxy, unique_name: str
) -> None:
    conn = connect(port=proxy.port, heartbeat=1)
    channel = conn.channel()
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(HeartbeatTimeout):
        channel.queue_declare(queue=unique_name, auto_delete=True)
    assert time.monotonic() - started < 3.5


def test_heartbeat_tick_translates_missed_heartbeats(connect: Connect, proxy: FaultProxy) -> None:
    conn = connect(port=proxy.port, heartbeat=1)
    proxy.blackhole()
    deadline = time.monotonic() + 5
    with pytest.raises(HeartbeatTimeout):
        while time.monotonic() < deadline:
            conn.heartbeat_tick()
            time.sleep(0.1)


def test_a_busy_owner_is_not_mistaken_for_a_dead_peer(connect: Connect) -> None:
    conn = connect(heartbeat=1)
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0.3)
    stop = threading.Event()

    def beat() -> None:  # what broker.connection.heartbeat does for a busy owner
        while not stop.wait(0.25):
            conn.send_heartbeat()

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        time.sleep(3)  # the owner is busy; the broker's heartbeats queue up unread
        with pytest.raises(TimeoutError):  # not HeartbeatTimeout
            conn.drain_events(timeout=0.5)
    finally:
        stop.set()
        beater.join()
    assert conn.is_open


def test_send_heartbeat_from_another_thread_while_the_owner_drains(
    connect: Connect, unique_name: str
) -> None:
    conn = connect(heartbeat=2)
    stop = threading.Event()

    def beat() -> int:
        sent = 0
        while not stop.is_set():
            conn.send_heartbeat()
            sent += 1
            time.sleep(0.001)
        return sent

    with ThreadPoolExecutor(1) as pool:
        beating = pool.submit(beat)
        try:
            channel = conn.channel()
            channel.queue_declare(queue=unique_name, auto_delete=True)
            received: list[Any] = []
            channel.basic_consume(queue=unique_name, callback=received.append, no_ack=True)
            for i in range(200):
                channel.basic_publish(channel.prepare_message(b"m%d" % i), routing_key=unique_name)
            drain_until(conn, lambda: len(received) == 200)
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.5)
        finally:
            stop.set()
    assert beating.result() > 50  # re-raises whatever the helper thread hit
    assert [m.body for m in received] == [b"m%d" % i for i in range(200)]  # frames intact
    assert conn.is_open


# -- publisher confirms and returns ------------------------------------------------------------


class Confirms:
    """A confirm listener that records what it is told."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.nacks: list[tuple[int, bool]] = []

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acks.append((delivery_tag, multiple))

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacks.append((delivery_tag, multiple))


def test_confirms_and_returns_reach_the_hooks(connect: Connect, unique_name: str) -> None:
    conn = connect()
    channel = conn.channel()
    assert not channel.confirms_synchronously
    channel.confirm_select()
    listener = Confirms()
    acks = listener.acks
    returns: list[tuple[Any, ...]] = []
    channel.confirm_listener = listener
    channel.on_return = lambda *args: returns.append(args)
    channel.queue_declare(queue=unique_name, auto_delete=True)

    channel.basic_publish(channel.prepare_message(b"ok"), routing_key=unique_name)
    unroutable = f"{unique_name}-none"
    channel.basic_publish(channel.prepare_message(b"lost"), routing_key=unroutable, mandatory=True)
    drain_until(conn, lambda: bool(acks) and acks[-1][0] == 2)

    code, text, exchange, routing_key, message = returns[0]
    assert (code, text, exchange, routing_key) == (312, "NO_ROUTE", "", unroutable)
    assert message.body == b"lost"
    assert max(tag for tag, _ in acks) == 2


def test_nacks_reach_the_nack_hook(connect: Connect, unique_name: str) -> None:
    conn = connect()
    channel = conn.channel()
    reject_all = {"x-max-length": 0, "x-overflow": "reject-publish"}
    channel.queue_declare(queue=unique_name, auto_delete=True, arguments=reject_all)
    channel.confirm_select()
    listener = Confirms()
    nacks = listener.nacks
    channel.confirm_listener = listener
    assert channel.confirm_listener is listener
    channel.basic_publish(channel.prepare_message(b"rejected"), routing_key=unique_name)
    drain_until(conn, lambda: bool(nacks))
    assert nacks[0][0] == 1
    channel.confirm_listener = None
    assert not channel.events["basic_nack"] and not channel.events["basic_ack"]


# -- parameters are validated before any I/O ---------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"heartbeat": -1}, "heartbeat"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"login_method": "KERBEROS"}, "login_method"),
        ({"port": 0}, "port"),
        ({"transport_options": {"frame_max": 100}}, "frame_max"),
        ({"transport_options": {"channel_max": "2"}}, "channel_max"),
        ({"ssl": {"ca_cert": "/x.pem"}}, "ca_cert"),
        ({"ssl": {"cert_reqs": 99}}, "cert_reqs"),
        ({"ssl": {"cert_reqs": ssl.CERT_NONE, "check_hostname": True}}, "check_hostname"),
        ({"ssl": {"ca_certs": "/nonexistent/ca.pem"}}, "ca_certs"),
        ({"ssl": "yes"}, "ssl"),
    ],
)
def test_bad_parameters_raise_configuration_error(overrides: dict[str, Any], names: str) -> None:
    fields: dict[str, Any] = {"hostname": "127.0.0.1", "port": 1, **overrides}
    with pytest.raises(ConfigurationError, match=names):
        Transport().connect(ConnectionParams(**fields))
