"""Consumer and Message on memory://: decoding and accept, acks, prefetch, cancel, revive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Queue
from broker.errors import ConfigurationError, ContentDisallowed, MessageStateError
from broker.messaging.message import Message
from broker.messaging.producer import Consumer, Producer
from tests.support.messaging import fetch
from transports.memory.transport import inspect


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- accept and decoding ----------------------------------------------------------


def test_pickle_is_refused_unless_the_consumer_accepts_it(conn):
    queue = Queue("q")
    Producer(conn).publish({1, 2}, routing_key="q", declare=[queue], serializer="pickle")
    consumer = Consumer(conn, [queue], callbacks=[lambda body, message: None])
    consumer.consume()
    with pytest.raises(ContentDisallowed):
        conn.drain_events(timeout=1)
    consumer.cancel()


def test_accepted_pickle_is_decoded(conn):
    queue = Queue("q")
    Producer(conn).publish({1, 2}, routing_key="q", declare=[queue], serializer="pickle")
    bodies: list[Any] = []
    with Consumer(conn, [queue], callbacks=[lambda b, m: bodies.append(b)], accept=["pickle"]):
        conn.drain_events(timeout=1)
    assert bodies == [{1, 2}]


def test_on_decode_error_gets_the_message_instead(conn):
    queue = Queue("q")
    Producer(conn).publish("text", routing_key="q", declare=[queue])
    errors: list[tuple[Message, Exception]] = []
    consumer = Consumer(
        conn,
        [queue],
        accept=["json"],
        callbacks=[lambda b, m: pytest.fail("callback must not run")],
        on_decode_error=lambda message, exc: errors.append((message, exc)),
    )
    with consumer:
        conn.drain_events(timeout=1)
    assert len(errors) == 1
    assert isinstance(errors[0][1], ContentDisallowed)


def test_on_message_receives_undecoded_messages(conn):
    queue = Queue("q")
    Producer(conn).publish([1, 2], routing_key="q", declare=[queue])
    seen: list[Message] = []
    with Consumer(conn, [queue], on_message=seen.append):
        conn.drain_events(timeout=1)
    assert seen[0].payload == [1, 2]


def test_consumer_without_callbacks_complains(conn):
    queue = Queue("q")
    Producer(conn).publish(b"x", routing_key="q", declare=[queue])
    with Consumer(conn, [queue]), pytest.raises(ConfigurationError, match="no callbacks"):
        conn.drain_events(timeout=1)


# -- the message state machine -----------------------------------------------------


def test_acking_twice_raises_message_state_error(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    assert repr(message).startswith("<Message tag=1 state=RECEIVED")
    message.ack()
    assert message.acknowledged and message.state == "ACK"
    with pytest.raises(MessageStateError, match="already acknowledged"):
        message.ack()
    with pytest.raises(MessageStateError):
        message.reject()


def test_requeue_puts_the_message_back_marked_redelivered(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    message.requeue()
    assert message.state == "REQUEUED"
    again = fetch(conn, "q")
    assert again.delivery_info["redelivered"] is True
    again.reject()
    assert again.state == "REJECTED"
    assert Queue("q")(conn).get() is None


def test_no_ack_messages_are_settled_from_the_start(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = Queue("q")(conn).get(no_ack=True)
    assert message is not None and message.acknowledged
    message.ack()  # harmless, as in kombu
    message.ack()


# -- consumer behaviour ------------------------------------------------------------


def test_prefetch_limits_unacked_deliveries(conn):
    queue = Queue("q")
    producer = Producer(conn)
    for i in range(3):
        producer.publish(i, routing_key="q", declare=[queue])
    held: list[Message] = []
    with Consumer(conn, [queue], on_message=held.append, prefetch_count=1):
        conn.drain_events(timeout=1)
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.1)
        assert len(held) == 1
        held[0].ack()
        conn.drain_events(timeout=1)
        assert len(held) == 2


def test_cancel_by_queue_add_queue_and_consuming_from(conn):
    producer = Producer(conn)
    a, b = Queue("a"), Queue("b")
    producer.maybe_declare(a)
    producer.maybe_declare(b)
    consumer = Consumer(conn, [a], on_message=lambda m: m.ack())
    consumer.consume()
    consumer.add_queue(b)
    assert consumer.consuming_from("a") and not consumer.consuming_from("b")
    consumer.consume()
    assert consumer.consuming_from("b")
    consumer.cancel_by_queue("a")
    assert not consumer.consuming_from("a") and consumer.is_consuming
    assert inspect()[0]["a"].consumers == 0
    consumer.cancel()
    assert not consumer.is_consuming
    assert conn.topology.consumers == []


def test_consume_is_idempotent_and_recorded_for_recovery(conn):
    consumer = Consumer(conn, [Queue("q")], on_message=lambda m: None)
    consumer.consume()
    consumer.consume()
    assert inspect()[0]["q"].consumers == 1
    assert conn.topology.consumers == [consumer]


def test_recover_redelivers_unacked_messages(conn):
    queue = Queue("q")
    Producer(conn).publish(b"x", routing_key="q", declare=[queue])
    seen: list[Message] = []
    with Consumer(conn, [queue], on_message=seen.append) as consumer:
        conn.drain_events(timeout=1)
        consumer.recover(requeue=True)
        conn.drain_events(timeout=1)
    assert [m.delivery_info["redelivered"] for m in seen] == [False, True]


def test_consumer_revive_moves_to_a_new_channel_with_the_same_tags(conn):
    queue = Queue("q")
    seen: list[Any] = []
    consumer = Consumer(conn, [queue], callbacks=[lambda b, m: (seen.append(b), m.ack())])
    consumer.consume()
    tags = dict(consumer._active)
    new_channel = conn.channel()
    consumer.revive(new_channel)
    assert consumer.channel is new_channel
    assert consumer._active == tags
    assert inspect()[0]["q"].consumers == 1
    Producer(conn).publish("after", routing_key="q")
    conn.drain_events(timeout=1)
    assert seen == ["after"]
