"""Pipelined confirms with coalesced writes, against the RabbitMQ on 127.0.0.1:5672.

A ``producer.confirms()`` batch on the AMQP transport holds the connection's
frames in a WriteBuffer and sends them in large writes. These tests check
that nothing is lost or reordered by that: every publish is confirmed and
arrives, the buffer is gone (and everything sent) when the batch ends,
whether normally or by an exception, reads in the middle of a batch send
what is held first, heartbeats from their own thread interleave with
multi-frame messages without corrupting the stream, and a channel error is
still reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection, Producer
from broker.errors import ChannelError, NotFound
from tests.support.wait import wait_until
from transports.amqp.transport import AmqpConnection

pytestmark = pytest.mark.broker


@pytest.fixture
def conn(rabbitmq_url: str) -> Iterator[Connection]:
    connection = Connection(rabbitmq_url)
    yield connection
    connection.close()


@pytest.fixture
def queue(conn: Connection, unique_name: str) -> Iterator[str]:
    channel = conn.channel()
    channel.queue_declare(queue=unique_name, auto_delete=False)
    yield unique_name
    conn.default_channel.queue_delete(queue=unique_name)


def message_count(conn: Connection, queue: str) -> int:
    ok = conn.default_channel.queue_declare(queue=queue, passive=True)
    assert ok is not None
    return ok.message_count


def wait_for_count(conn: Connection, queue: str, count: int) -> None:
    # Another channel's publishes are routed asynchronously: give them a moment.
    wait_until(
        lambda: message_count(conn, queue) >= count,
        interval=0.05,
        message=f"fewer than {count} messages arrived",
    )


def driver_of(conn: Connection) -> Any:
    link = conn.transport_connection
    assert isinstance(link, AmqpConnection)
    return link.driver


def test_a_batch_of_5000_is_confirmed_in_far_fewer_socket_writes(
    conn: Connection, queue: str
) -> None:
    producer = conn.Producer(routing_key=queue)
    sends: list[int] = []
    with producer.confirms(timeout=60) as batch:
        for n in range(5000):
            producer.publish(b"%05d" % n)
        buffer = driver_of(conn).write_buffer
        assert buffer is not None
    sends.append(buffer.sends)
    assert batch.published == batch.confirmed == 5000
    assert not batch.unconfirmed and not batch.nacked
    assert 0 < sends[0] < 500  # not one write per publish
    assert driver_of(conn).write_buffer is None  # the transport writes directly again
    wait_for_count(conn, queue, 5000)
    got = [conn.default_channel.basic_get(queue=queue, no_ack=True) for _ in range(3)]
    assert [m.body for m in got if m is not None] == [b"00000", b"00001", b"00002"]


def test_what_was_published_before_an_exception_is_sent(conn: Connection, queue: str) -> None:
    producer = conn.Producer(routing_key=queue)
    with pytest.raises(RuntimeError, match="user code failed"), producer.confirms(timeout=30):
        for n in range(10):
            producer.publish(b"%d" % n)
        raise RuntimeError("user code failed")
    assert driver_of(conn).write_buffer is None
    wait_for_count(conn, queue, 10)


def test_a_read_in_the_middle_of_a_batch_sends_what_is_held(conn: Connection, queue: str) -> None:
    producer = conn.Producer(routing_key=queue)
    with producer.confirms(timeout=30):
        for n in range(20):
            producer.publish(b"%d" % n)
        buffer = driver_of(conn).write_buffer
        assert buffer.pending > 0
        # A synchronous method on another channel of the connection: reading
        # its reply sends every publish held before it.
        conn.default_channel.queue_declare(queue=queue, passive=True)
        assert buffer.pending == 0
        wait_for_count(conn, queue, 20)  # before the batch ends


def test_heartbeats_from_their_thread_never_split_a_multi_frame_message(
    rabbitmq_url: str, queue: str
) -> None:
    body = bytes(range(256)) * 1200  # 300 KB: several frames per message
    stop = threading.Event()
    sent = [0]
    with Connection(rabbitmq_url, heartbeat=10) as conn:
        conn.connect()
        transport_conn = conn.transport_connection
        assert transport_conn is not None

        def heartbeats() -> None:
            while not stop.is_set():
                transport_conn.send_heartbeat()
                sent[0] += 1
                time.sleep(0.0005)

        thread = threading.Thread(target=heartbeats, daemon=True)
        producer = conn.Producer(routing_key=queue)
        thread.start()
        try:
            with producer.confirms(timeout=60) as batch:
                for _ in range(60):
                    producer.publish(body)
        finally:
            stop.set()
            thread.join(5)
        assert batch.confirmed == 60 and sent[0] > 0
        # A corrupted stream would have made the broker close the connection.
        assert conn.connected
        wait_for_count(conn, queue, 60)
        got = conn.default_channel.basic_get(queue=queue, no_ack=True)
        assert got is not None and got.body == body


def test_heartbeats_send_held_frames_while_the_owner_is_busy(rabbitmq_url: str, queue: str) -> None:
    lost: list[BaseException | None] = []
    with Connection(rabbitmq_url, heartbeat=1, on_close=lambda c, e: lost.append(e)) as conn:
        producer = conn.Producer(routing_key=queue)
        with producer.confirms(timeout=30) as batch:
            producer.publish(b"first")
            buffer = driver_of(conn).write_buffer
            assert buffer.pending > 0
            time.sleep(3)  # three heartbeat intervals without reading or writing
            assert buffer.pending == 0  # the heartbeat thread sent it, then itself
            producer.publish(b"second")
        assert batch.confirmed == 2 and lost == [] and conn.connected


def test_a_channel_error_in_a_batch_is_raised(conn: Connection, unique_name: str) -> None:
    producer = Producer(conn, exchange=f"{unique_name}-missing", auto_declare=False)
    with pytest.raises(ChannelError) as caught, producer.confirms(timeout=10) as batch:
        for _ in range(5):
            producer.publish(b"nowhere", routing_key="k")
    assert isinstance(caught.value, NotFound)
    assert driver_of(conn).write_buffer is None
    assert batch.confirmed + len(batch.unconfirmed) + len(batch.nacked) == 5


# -- outside batches, publishes still dispatch what has arrived first ----------------


def test_an_error_caused_by_a_publish_surfaces_from_a_later_publish(
    conn: Connection, queue: str, unique_name: str
) -> None:
    channel = conn.channel()
    message = channel.prepare_message(b"x")
    channel.basic_publish(message, exchange=f"{unique_name}-missing", routing_key="k")
    deadline = time.monotonic() + 10
    with pytest.raises(NotFound):  # the broker's channel.close, read before a publish
        while time.monotonic() < deadline:
            channel.basic_publish(message, exchange="", routing_key=queue)
            time.sleep(0.01)
    assert not channel.is_open


def test_a_return_is_dispatched_by_the_next_publish(conn: Connection, queue: str) -> None:
    channel = conn.channel()
    returned: list[str] = []
    channel.on_return = lambda code, text, exchange, key, message: returned.append(key)
    message = channel.prepare_message(b"x")
    channel.basic_publish(message, exchange="", routing_key="no-such-queue", mandatory=True)
    deadline = time.monotonic() + 10
    while not returned and time.monotonic() < deadline:
        channel.basic_publish(message, exchange="", routing_key=queue)
        time.sleep(0.01)
    assert returned == ["no-such-queue"]
