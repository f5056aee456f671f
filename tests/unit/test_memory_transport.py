"""The memory transport's own behaviour (shared behaviour is in tests/conformance/).

The in-process broker is wiped after every test by the autouse fixture in
tests/conftest.py, so names need not be unique here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import transports
from broker.errors import (
    AccessRefused,
    ChannelError,
    ConfigurationError,
    IrrecoverableChannelError,
    NotFound,
    PreconditionFailed,
    RecoverableChannelError,
    RecoverableConnectionError,
)
from transports.base import Channel, ConnectionParams
from transports.memory import transport as memory

Connect = Callable[..., memory.MemoryConnection]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open memory connections (to ``vhost``, default '/'); all closed afterwards."""
    opened: list[memory.MemoryConnection] = []

    def _connect(vhost: str = "/") -> memory.MemoryConnection:
        params = ConnectionParams(hostname="localhost", port=0, virtual_host=vhost)
        connection = memory.Transport().connect(params)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def connection(connect: Connect) -> memory.MemoryConnection:
    return connect()


@pytest.fixture
def channel(connection: memory.MemoryConnection) -> memory.MemoryChannel:
    return connection.channel()


def publish(channel: Channel, key: str, body: bytes, exchange: str = "", **props: Any) -> None:
    channel.basic_publish(channel.prepare_message(body, **props), exchange, key)


def bodies(channel: Channel, queue: str) -> list[bytes]:
    found = []
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        found.append(message.body)
    return found


# -- the transport and its connection ---------------------------------------------------


def test_registry_resolves_the_memory_transport() -> None:
    cls = transports.resolve("memory")
    assert cls is memory.Transport
    assert (cls.name, cls.default_port) == ("memory", None)
    assert cls.capabilities.publisher_confirms and not cls.capabilities.heartbeats
    assert cls.capabilities.exchange_types == {"direct", "topic", "fanout", "headers"}


def test_connection_reports_server_facts(connection: memory.MemoryConnection) -> None:
    props = connection.server_properties
    assert props["product"] == "brokerpool-memory"
    assert props["capabilities"]["publisher_confirms"] is True
    assert connection.heartbeat == 0
    assert connection.frame_max > 0
    assert not connection.is_blocked
    connection.heartbeat_tick()
    connection.send_heartbeat()
    assert connection.verify() and connection.is_open
    assert "open" in repr(connection) and "vhost='/'" in repr(connection)


def test_closed_connection_refuses_work(connection: memory.MemoryConnection) -> None:
    channel = connection.channel()
    connection.close()
    connection.close()  # closing twice is harmless
    assert not connection.is_open and not connection.verify() and not channel.is_open
    with pytest.raises(RecoverableConnectionError):
        connection.channel()
    with pytest.raises(RecoverableConnectionError):
        connection.drain_events(timeout=0)
    with pytest.raises(RecoverableConnectionError):
        channel.queue_declare("q")


def test_calls_on_a_closed_channel_raise_a_recoverable_channel_error(
    connection: memory.MemoryConnection,
) -> None:
    with connection.channel() as channel:
        pass
    assert not channel.is_open
    with pytest.raises(RecoverableChannelError, match="channel 1 is closed") as closed:
        publish(channel, "q", b"x")
    assert closed.value.reply_code == 504
    assert "closed" in repr(channel)


def test_the_error_that_closed_a_channel_is_named_later(channel: memory.MemoryChannel) -> None:
    with pytest.raises(NotFound):
        channel.basic_get("missing")
    with pytest.raises(RecoverableChannelError, match="no queue 'missing'"):
        channel.basic_get("missing")


def test_drain_events_times_out_with_timeout_error(connection: memory.MemoryConnection) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connection.drain_events(timeout=0.05)
    assert time.monotonic() - started < 5  # a hang guard, not a speed check


def test_drain_events_returns_with_a_delivery_published_from_another_thread(
    connection: memory.MemoryConnection, connect: Connect
) -> None:
    channel = connection.channel()
    channel.queue_declare("later")
    got: list[bytes] = []
    channel.basic_consume("later", callback=lambda m: got.append(m.body), no_ack=True)
    sender = connect().channel()
    published = threading.Event()

    def publish_when_the_owner_waits() -> None:
        published.wait(5)
        sender.basic_publish(sender.prepare_message(b"x"), "", "later")

    thread = threading.Thread(target=publish_when_the_owner_waits)
    thread.start()
    published.set()
    connection.drain_events(timeout=30)  # returns with the delivery, not at the timeout
    thread.join()
    assert got == [b"x"]


# -- virtual hosts and reset -------------------------------------------------------------


def test_virtual_hosts_are_isolated(connect: Connect) -> None:
    left, right = connect("left").channel(), connect("right").channel()
    left.queue_declare("jobs")
    right.queue_declare("jobs")
    publish(left, "jobs", b"for left")
    assert bodies(right, "jobs") == []
    assert bodies(left, "jobs") == [b"for left"]
    left.exchange_declare("events", "fanout")
    with pytest.raises(NotFound):
        right.exchange_declare("events", "fanout", passive=True)


def test_reset_wipes_every_vhost_and_closes_open_connections(connect: Connect) -> None:
    old = connect("a")
    channel = old.channel()
    channel.queue_declare("jobs")
    publish(channel, "jobs", b"x")
    memory.reset()

    assert not old.is_open and not channel.is_open
    assert memory.inspect("a") == ({}, {})
    fresh = connect("a").channel()
    with pytest.raises(NotFound):
        fresh.queue_declare("jobs", passive=True)


# -- queues: exclusive, auto-delete, lifecycle ---------------------------------------------


def test_exclusive_queue_belongs_to_its_connection(connect: Connect) -> None:
    owner, other = connect(), connect()
    owner.channel().queue_declare("mine", exclusive=True)
    intruder = other.channel()
    with pytest.raises(RecoverableChannelError) as locked:
        intruder.basic_get("mine")
    assert locked.value.reply_code == 405
    publish(other.channel(), "mine", b"publishing to it is allowed")

    owner.close()
    with pytest.raises(NotFound):
        other.channel().queue_declare("mine", passive=True)


def test_auto_delete_queue_goes_when_its_last_consumer_cancels(
    channel: memory.MemoryChannel,
) -> None:
    channel.queue_declare("temp", auto_delete=True)
    assert "temp" in memory.inspect()[0]  # never consumed: it stays
    first = channel.basic_consume("temp", callback=lambda m: None)
    second = channel.basic_consume("temp", callback=lambda m: None)
    channel.basic_cancel(first)
    assert "temp" in memory.inspect()[0]
    channel.basic_cancel(second)
    assert "temp" not in memory.inspect()[0]


def test_auto_delete_queue_goes_when_its_consumers_channel_closes(
    connection: memory.MemoryConnection,
) -> None:
    with connection.channel() as channel:
        channel.queue_declare("temp", auto_delete=True)
        channel.basic_consume("temp", callback=lambda m: None)
    assert "temp" not in memory.inspect()[0]


def test_deleting_a_queue_cancels_its_consumers_with_notice(
    connection: memory.MemoryConnection, channel: memory.MemoryChannel
) -> None:
    channel.queue_declare("q", auto_delete=False)
    cancelled: list[str] = []
    tag = channel.basic_consume("q", callback=lambda m: None, on_cancel=cancelled.append)
    connection.channel().queue_delete("q")
    connection.drain_events(timeout=1)
    assert cancelled == [tag]
    assert channel.consumers == {}


def test_delete_if_unused_and_if_empty_refuse(connection: memory.MemoryConnection) -> None:
    setup = connection.channel()
    setup.queue_declare("busy", auto_delete=False)
    setup.basic_consume("busy", callback=lambda m: None)
    publish(setup, "busy", b"x")
    with pytest.raises(PreconditionFailed, match="in use"):
        connection.channel().queue_delete("busy", if_unused=True)
    setup.queue_declare("full", auto_delete=False)
    publish(setup, "full", b"x")
    with pytest.raises(PreconditionFailed, match="not empty"):
        connection.channel().queue_delete("full", if_empty=True)
    assert connection.channel().queue_delete("missing") == 0


def test_redeclare_checks_durable_and_x_arguments_only(connection: memory.MemoryConnection) -> None:
    channel = connection.channel()
    channel.queue_declare("q", auto_delete=False, arguments={"x-max-length": 10})
    channel.queue_declare("q", auto_delete=False, arguments={"x-max-length": 10, "note": 1})
    with pytest.raises(PreconditionFailed, match="inequivalent arg 'x-max-length'"):
        channel.queue_declare("q", auto_delete=False, arguments={"x-max-length": 11})
    with pytest.raises(PreconditionFailed, match="inequivalent arg 'durable'"):
        connection.channel().queue_declare("q", durable=True, auto_delete=False)


def test_empty_queue_name_means_the_last_declared_queue(channel: memory.MemoryChannel) -> None:
    ok = channel.queue_declare("")
    assert ok is not None
    publish(channel, ok.queue, b"x")
    assert channel.queue_purge() == 1
    assert channel.queue_delete() == 0
    assert channel.queue_declare("q", nowait=True) is None


# -- messages, acks, prefetch -----------------------------------------------------------------


def test_deliveries_are_copies(channel: memory.MemoryChannel) -> None:
    channel.queue_declare("q")
    message = channel.prepare_message(b"x", application_headers={"tags": ["a"]})
    channel.basic_publish(message, "", "q")
    channel.basic_publish(message, "", "q")
    message.properties["application_headers"]["tags"].append("changed by publisher")

    first = channel.basic_get("q", no_ack=True)
    assert first is not None
    first.headers["tags"].append("changed by consumer")
    second = channel.basic_get("q", no_ack=True)
    assert second is not None
    assert second.headers == {"tags": ["a"]}


def test_text_bodies_are_encoded_and_unknown_properties_dropped(
    channel: memory.MemoryChannel,
) -> None:
    message = channel.prepare_message("héllo", not_a_property=1, priority=None)
    assert message.body == "héllo".encode()
    assert message.properties == {"content_encoding": "utf-8"}
    assert message.headers == {}
    with pytest.raises(ConfigurationError, match="bytes or str"):
        channel.prepare_message(12)


def test_requeued_messages_regain_their_original_position(channel: memory.MemoryChannel) -> None:
    channel.queue_declare("q")
    for n in range(1, 5):
        publish(channel, "q", b"%d" % n)
    taken = [channel.basic_get("q") for _ in range(3)]
    for message in (taken[1], taken[0], taken[2]):
        assert message is not None
        channel.basic_reject(message.delivery_tag, requeue=True)
    assert bodies(channel, "q") == [b"1", b"2", b"3", b"4"]


def test_global_prefetch_limits_the_whole_channel(
    connection: memory.MemoryConnection, channel: memory.MemoryChannel
) -> None:
    got: list[Any] = []
    for name in ("a", "b"):
        channel.queue_declare(name)
        for n in range(3):
            publish(channel, name, b"%d" % n)
    channel.basic_qos(0, 2, True)
    channel.basic_consume("a", callback=got.append)
    channel.basic_consume("b", callback=got.append)
    connection.drain_events(timeout=1)
    assert len(got) == 2
    channel.basic_ack(0, multiple=True)
    connection.drain_events(timeout=1)
    assert len(got) == 4


def test_deliveries_not_yet_dispatched_go_back_when_their_consumer_cancels(
    connection: memory.MemoryConnection, channel: memory.MemoryChannel
) -> None:
    channel.queue_declare("q", auto_delete=False)
    got: list[Any] = []
    tag = channel.basic_consume("q", callback=got.append)
    for n in range(3):
        publish(channel, "q", b"%d" % n)  # pushed to the connection, not yet drained
    channel.basic_cancel(tag)
    with pytest.raises(TimeoutError):
        connection.drain_events(timeout=0.05)
    assert got == []
    assert bodies(channel, "q") == [b"0", b"1", b"2"]


def test_basic_recover_requeues_unacked_messages(channel: memory.MemoryChannel) -> None:
    channel.queue_declare("q")
    publish(channel, "q", b"x")
    assert channel.basic_get("q") is not None
    channel.basic_recover(requeue=True)
    again = channel.basic_get("q")
    assert again is not None and again.delivery_info["redelivered"]


def test_broker_errors_close_only_the_channel(connection: memory.MemoryConnection) -> None:
    channel = connection.channel()
    channel.queue_declare("q")
    publish(channel, "q", b"x")
    assert channel.basic_get("q") is not None
    with pytest.raises(PreconditionFailed, match="unknown delivery tag 99"):
        channel.basic_ack(99)
    assert not channel.is_open and connection.is_open
    # The unacked message went back when the error closed the channel.
    assert bodies(connection.channel(), "q") == [b"x"]


@pytest.mark.parametrize(
    "call",
    [
        lambda ch: ch.basic_qos(1024, 0, False),
        lambda ch: ch.basic_publish(ch.prepare_message(b"x"), "", "q", immediate=True),
    ],
    ids=["prefetch_size", "immediate"],
)
def test_unsupported_amqp_features_raise_not_implemented(
    channel: memory.MemoryChannel, call: Callable[[memory.MemoryChannel], None]
) -> None:
    with pytest.raises(IrrecoverableChannelError) as failure:
        call(channel)
    assert failure.value.reply_code == 540


def test_consumer_tags_are_generated_and_unique_per_channel(
    channel: memory.MemoryChannel,
) -> None:
    channel.queue_declare("q")
    assert channel.basic_consume("q", callback=print).startswith("amq.ctag-")
    channel.basic_consume("q", consumer_tag="mine", callback=print)
    with pytest.raises(ChannelError, match="reuse consumer tag 'mine'"):
        channel.basic_consume("q", consumer_tag="mine", callback=print)


def test_an_exclusive_consumer_is_alone_on_its_queue(connection: memory.MemoryConnection) -> None:
    connection.channel().queue_declare("q")
    connection.channel().basic_consume("q", callback=print)
    with pytest.raises(AccessRefused, match="exclusive use"):
        connection.channel().basic_consume("q", exclusive=True, callback=print)
    connection.channel().queue_declare("only")
    connection.channel().basic_consume("only", exclusive=True, callback=print)
    with pytest.raises(AccessRefused, match="exclusive use"):
        connection.channel().basic_consume("only", callback=print)


def test_mandatory_unroutable_without_a_handler_is_dropped(channel: memory.MemoryChannel) -> None:
    channel.basic_publish(channel.prepare_message(b"x"), "amq.direct", "nowhere", mandatory=True)
    assert channel.is_open


def test_confirm_select_is_accepted(channel: memory.MemoryChannel) -> None:
    channel.confirm_select()
    channel.queue_declare("q")
    publish(channel, "q", b"confirmed on return")
    assert bodies(channel, "q") == [b"confirmed on return"]
