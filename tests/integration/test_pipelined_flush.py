"""Held frames of a pipelined batch leave on their own, against the RabbitMQ on 127.0.0.1:5672.

Inside ``with producer.confirms():`` the AMQP transport holds outgoing frames
to send them in large writes. With heartbeats off and an owner that neither
publishes nor reads (it sleeps, or works in its own code), nothing used to
send them until the block ended. The connection's idle flusher now sends them
once the oldest is about 50 ms old: a second connection sees the message
while the batch is still open. The waits below are hang guards, not speed
checks: without the flusher the message would not arrive at all before the
block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from tests.support.wait import wait_until
from transports.amqp.transport import AmqpConnection
from transports.amqp.writes import IdleFlusher

pytestmark = pytest.mark.broker


@pytest.fixture
def conn(rabbitmq_url: str) -> Iterator[Connection]:
    connection = Connection(rabbitmq_url, heartbeat=0)
    yield connection
    connection.close()


@pytest.fixture
def observer(rabbitmq_url: str) -> Iterator[Connection]:
    """A second connection that watches the queue."""
    connection = Connection(rabbitmq_url)
    yield connection
    connection.close()


@pytest.fixture
def queue(observer: Connection, unique_name: str) -> Iterator[str]:
    observer.default_channel.queue_declare(queue=unique_name, auto_delete=False)
    yield unique_name
    observer.default_channel.queue_delete(queue=unique_name)


def count(observer: Connection, queue: str) -> int:
    ok = observer.default_channel.queue_declare(queue=queue, passive=True)
    assert ok is not None
    return ok.message_count


def driver_of(conn: Connection) -> Any:
    link = conn.transport_connection
    assert isinstance(link, AmqpConnection)
    return link.driver


def flusher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("brokerpool-write-flush")]


def test_a_publish_followed_by_a_sleep_reaches_the_broker_inside_the_block(
    conn: Connection, observer: Connection, queue: str
) -> None:
    producer = conn.Producer(routing_key=queue)
    with producer.confirms(timeout=30) as batch:
        producer.publish(b"alone")
        buffer = driver_of(conn).write_buffer
        assert buffer is not None  # held, not written through
        # The owner does nothing with the connection from here on.
        wait_until(
            lambda: count(observer, queue) == 1,
            message="the held publish never left while the owner slept",
        )
        assert buffer.pending == 0
        assert driver_of(conn).write_buffer is buffer  # still inside the batch
    assert batch.confirmed == 1


def test_each_of_several_spaced_publishes_leaves_without_a_call(
    conn: Connection, observer: Connection, queue: str
) -> None:
    producer = conn.Producer(routing_key=queue)
    with producer.confirms(timeout=30) as batch:
        for n in range(1, 4):
            producer.publish(b"%d" % n)
            wait_until(lambda n=n: count(observer, queue) == n, message=f"publish {n} stayed held")
    assert batch.confirmed == 3
    flusher = driver_of(conn).idle_flusher
    assert isinstance(flusher, IdleFlusher) and flusher.flushes >= 3


def test_one_flusher_per_connection_started_with_the_first_batch_ended_with_the_connection(
    rabbitmq_url: str, queue: str
) -> None:
    before = set(flusher_threads())
    conn = Connection(rabbitmq_url, heartbeat=0)
    try:
        producer = conn.Producer(routing_key=queue)
        producer.publish(b"unbatched")
        assert driver_of(conn).idle_flusher is None  # plain publishing starts nothing
        for _ in range(3):
            with producer.confirms(timeout=30):
                producer.publish(b"batched")
        flusher = driver_of(conn).idle_flusher
        assert flusher is not None and flusher.is_alive
        assert len(set(flusher_threads()) - before) == 1  # reused by every batch
        assert "idle" in repr(flusher)  # watching nothing between batches
    finally:
        conn.close()
    wait_until(lambda: not flusher.is_alive, message="the flusher outlived its connection")


def test_a_busy_batch_is_not_slowed_into_one_write_per_publish(
    conn: Connection, queue: str
) -> None:
    # The flusher only acts on frames 50 ms old: a tight loop still coalesces.
    producer = conn.Producer(routing_key=queue)
    with producer.confirms(timeout=60) as batch:
        for n in range(3000):
            producer.publish(b"%05d" % n)
        buffer = driver_of(conn).write_buffer
    assert batch.confirmed == 3000
    assert buffer.sends < 300
