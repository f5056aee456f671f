"""The messaging layer against the real RabbitMQ on 127.0.0.1:5672.

Every test uses unique names and auto-deleting or explicitly deleted entities,
because other runs share the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import MessageNacked, MessageUnroutable
from broker.messaging.message import Message
from broker.messaging.producer import Consumer, Producer
from tests.support.wait import drain_until

pytestmark = pytest.mark.broker


@pytest.fixture
def conn(rabbitmq_url: str) -> Iterator[Connection]:
    connection = Connection(rabbitmq_url, connect_timeout=5)
    yield connection
    connection.close()


@pytest.fixture
def cleanup(rabbitmq_url: str) -> Iterator[list[Queue | Exchange]]:
    """Entities to delete after the test, on a connection of their own."""
    entities: list[Queue | Exchange] = []
    yield entities
    with Connection(rabbitmq_url) as admin:
        channel = admin.channel()
        for entity in entities:
            if isinstance(entity, Queue):
                channel.queue_delete(entity.name)
            else:
                channel.exchange_delete(entity.name)


def test_hello_world(conn, unique_name):
    exchange = Exchange(unique_name, "direct", auto_delete=True)
    queue = Queue(unique_name, exchange, "greeting", auto_delete=True)
    Producer(conn, exchange=exchange).publish(
        {"hello": "world"}, routing_key="greeting", declare=[queue], headers={"h": 1}
    )
    received: list[tuple[Any, Message]] = []
    with Consumer(conn, [queue], callbacks=[lambda b, m: (received.append((b, m)), m.ack())]):
        drain_until(conn, lambda: received)
    body, message = received[0]
    assert body == {"hello": "world"}
    assert message.headers == {"h": 1}
    assert message.properties["delivery_mode"] == 2  # persistent: durable exchange


def test_transient_exchange_publishes_transient_messages(conn, unique_name):
    exchange = Exchange(unique_name, durable=False, auto_delete=True)
    queue = Queue(unique_name, exchange, "k", auto_delete=True)
    Producer(conn, exchange=exchange).publish(b"x", routing_key="k", declare=[queue])
    received: list[Message] = []
    with Consumer(conn, [queue], on_message=received.append, no_ack=True):
        drain_until(conn, lambda: received)
    assert received[0].properties["delivery_mode"] == 1


def test_per_message_confirms(conn, unique_name):
    queue = Queue(unique_name, auto_delete=True, durable=False)
    producer = Producer(conn, confirm_publish=True)
    for i in range(20):
        producer.publish(i, routing_key=unique_name, declare=[queue])
    ok = queue(conn).queue_declare(passive=True)
    assert ok is not None and ok.message_count == 20
    queue(conn).delete()


def test_pipelined_confirms_with_1000_messages(conn, unique_name):
    queue = Queue(unique_name, auto_delete=True, durable=False)
    producer = Producer(conn)
    producer.maybe_declare(queue)
    with producer.confirms(timeout=30) as batch:
        for i in range(1000):
            producer.publish(i, routing_key=unique_name, message_id=str(i))
    assert (batch.published, batch.confirmed) == (1000, 1000)
    assert batch.nacked == [] and batch.unconfirmed == []
    received: list[Any] = []
    with Consumer(conn, [queue], callbacks=[lambda b, m: received.append(b)], no_ack=True):
        drain_until(conn, lambda: len(received) == 1000)
    assert received == list(range(1000))


def test_nacked_messages_raise(conn, unique_name, cleanup):
    # A full queue that rejects new publishes makes RabbitMQ nack them.
    queue = Queue(
        unique_name,
        durable=False,
        max_length=1,
        queue_arguments={"x-overflow": "reject-publish"},
    )
    cleanup.append(queue)
    producer = Producer(conn, confirm_publish=True)
    producer.publish(b"fits", routing_key=unique_name, declare=[queue])
    with pytest.raises(MessageNacked):
        producer.publish(b"overflows", routing_key=unique_name)
    batch = producer.confirms(timeout=10)
    with pytest.raises(MessageNacked, match="nacked 2 of 2"), batch:
        producer.publish(b"a", routing_key=unique_name, message_id="a")
        producer.publish(b"b", routing_key=unique_name, message_id="b")
    assert [r.message_id for r in batch.nacked] == ["a", "b"]


def test_mandatory_unroutable_raises_when_confirming(conn, unique_name):
    exchange = Exchange(unique_name, auto_delete=True, durable=False)
    producer = Producer(conn, exchange=exchange, confirm_publish=True)
    with pytest.raises(MessageUnroutable, match="312 NO_ROUTE"):
        producer.publish(b"lost", routing_key="nobody", mandatory=True)
    exchange(conn).delete()


def test_mandatory_unroutable_reaches_on_return(conn, unique_name):
    exchange = Exchange(unique_name, auto_delete=True, durable=False)
    returned: list[tuple[Any, ...]] = []
    confirming = Producer(
        conn, exchange=exchange, confirm_publish=True, on_return=lambda *a: returned.append(a)
    )
    confirming.publish(b"one", routing_key="nobody", mandatory=True)
    assert len(returned) == 1  # reported before publish returned
    plain = Producer(conn, exchange=exchange, on_return=lambda *a: returned.append(a))
    plain.publish(b"two", routing_key="nobody", mandatory=True)
    drain_until(conn, lambda: len(returned) == 2)  # arrives asynchronously
    exc, exchange_name, routing_key, message = returned[1]
    assert isinstance(exc, MessageUnroutable)
    assert (exchange_name, routing_key, message.body) == (unique_name, "nobody", b"two")
    exchange(conn).delete()


def test_unroutable_in_a_batch_is_listed(conn, unique_name):
    producer = Producer(conn, exchange=Exchange(unique_name, auto_delete=True, durable=False))
    with pytest.raises(MessageUnroutable), producer.confirms(timeout=10) as batch:
        producer.publish(b"x", routing_key="nobody", mandatory=True, message_id="m1")
    assert [r.message_id for r in batch.returned] == ["m1"]
    producer.exchange(conn).delete()


def test_retrying_publish_survives_a_dropped_connection(conn, unique_name, cleanup):
    queue = Queue(unique_name, durable=False)
    cleanup.append(queue)
    producer = Producer(conn, confirm_publish=True)
    producer.publish(1, routing_key=unique_name, declare=[queue])
    conn.collect()  # the link is gone; the producer's channel is dead
    producer.publish(2, routing_key=unique_name, declare=[queue], retry=True)
    ok = queue(conn).queue_declare(passive=True)
    assert ok is not None and ok.message_count == 2


def test_topology_replay_after_collect_and_reconnect(conn, rabbitmq_url, unique_name, cleanup):
    exchange = Exchange(unique_name, "topic", auto_delete=True, durable=False)
    named = Queue(unique_name, exchange, "*.error", auto_delete=True, durable=False)
    anonymous = Queue("", exchange, "#", exclusive=True)
    cleanup.append(exchange)
    seen: list[tuple[str, Any]] = []
    consumer = Consumer(
        conn,
        [named, anonymous],
        callbacks=[lambda b, m: (seen.append((m.delivery_info["routing_key"], b)), m.ack())],
    )
    consumer.consume()
    old_anonymous = consumer.queues[1].name

    conn.collect()  # auto-delete and exclusive queues die with the connection
    conn.connect()  # replays exchanges, queues, bindings, then consumers

    assert consumer.queues[1].name != old_anonymous
    with Connection(rabbitmq_url) as other:
        Producer(other, exchange=exchange).publish("disk full", routing_key="db.error")
    drain_until(conn, lambda: len(seen) == 2)
    assert sorted(seen) == [("db.error", "disk full"), ("db.error", "disk full")]
    consumer.cancel()


def test_simple_queue_round_trip(conn, unique_name, cleanup):
    tasks = conn.SimpleQueue(unique_name)
    cleanup.extend([tasks.queue, tasks.queue.exchange])  # type: ignore[list-item]
    tasks.put({"job": 1})
    message = tasks.get(timeout=5)
    assert message.payload == {"job": 1}
    message.ack()
    started = time.monotonic()
    with pytest.raises(tasks.Empty):
        tasks.get(timeout=0.2)
    assert time.monotonic() - started < 3
    tasks.close()


# -- exchange-to-exchange bindings ---------------------------------------------------


def get_within(queue: Queue, timeout: float = 5.0) -> Message | None:
    """basic_get until a message arrives (RabbitMQ routes asynchronously)."""
    deadline = time.monotonic() + timeout
    while (message := queue.get(no_ack=True)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return message


def test_exchange_bind_to_routes_through_the_destination(conn, unique_name, cleanup):
    source = Exchange(f"{unique_name}-src", "topic", durable=False)
    destination = Exchange(f"{unique_name}-dst", "fanout", durable=False)
    queue = Queue(unique_name, destination, durable=False)(conn)
    cleanup.extend([queue, source, destination])
    source(conn).declare()
    queue.declare()
    queue.exchange.bind_to(source, "order.#")
    producer = Producer(conn, exchange=source)
    producer.publish("filtered by the source", routing_key="user.created")
    producer.publish("routed", routing_key="order.created")
    message = get_within(queue)
    assert message is not None
    assert (message.payload, message.delivery_info["exchange"]) == ("routed", source.name)
    assert queue.get() is None  # the first publish went nowhere

    queue.exchange.unbind_from(source.name, "order.#")
    producer.publish("no longer routed", routing_key="order.created")
    producer.publish("marker", routing_key=queue.name, exchange="")  # arrives after it
    assert conn.topology.exchange_bindings == []
    message = get_within(queue)
    assert message is not None and message.payload == "marker"
    assert queue.get() is None


def test_replay_restores_an_exchange_binding_after_a_reconnect(
    conn, rabbitmq_url, unique_name, cleanup
):
    source = Exchange(f"{unique_name}-src", "direct", durable=False)
    destination = Exchange(f"{unique_name}-dst", "fanout", durable=False)
    queue = Queue(unique_name, destination, durable=False)
    cleanup.extend([queue, source, destination])
    source(conn).declare()
    queue(conn).declare()
    destination(conn).bind_to(source, "invoice")

    conn.collect()
    with Connection(rabbitmq_url) as other:  # the broker loses the binding meanwhile
        other.default_channel.exchange_unbind(destination.name, source.name, "invoice")
    conn.connect()  # replays exchanges, exchange bindings, queues, queue bindings

    Producer(conn, exchange=source).publish("restored", routing_key="invoice")
    message = get_within(queue(conn))
    assert message is not None and message.payload == "restored"
