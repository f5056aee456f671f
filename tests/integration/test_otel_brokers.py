"""Spans and metrics on the real RabbitMQ (amqp://) and Redis (redis://).

The same workload as on memory:// (tests/unit/test_otel_*.py), on real
brokers: the trace crosses the broker, ``messaging.system`` names it, the
metric values match the workload exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

import broker.aio
from broker import Connection, Consumer, Producer, Queue
from tests.support.otel import Recording, recording


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


@pytest.fixture(params=["amqp", "redis"])
def target(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], str, int]:
    """(URL, transport options, messaging.system, port) of one real broker."""
    if request.param == "amqp":
        return request.getfixturevalue("rabbitmq_url"), {}, "rabbitmq", 5672
    prefix = request.getfixturevalue("redis_key_prefix")
    return request.getfixturevalue("redis_url"), {"key_prefix": prefix}, "redis", 6379


def test_a_hundred_messages_cross_the_broker_in_their_traces(
    otel: Recording, target: tuple[str, dict[str, Any], str, int], unique_name: str
) -> None:
    url, options, system, port = target
    with Connection(url, transport_options=options) as conn:
        queue = Queue(unique_name, durable=False, auto_delete=True)
        producer = Producer(conn, routing_key=unique_name)
        producer.maybe_declare(queue)
        for n in range(100):
            producer.publish({"n": n}, message_id=f"m-{n}")
        seen: list[int] = []

        def on_message(body: Any, message: Any) -> None:
            seen.append(body["n"])
            message.ack()

        with Consumer(conn, [queue], callbacks=[on_message]):
            while len(seen) < 100:
                conn.drain_events(timeout=5)

    publishes = {
        s.attributes["messaging.message.id"]: s
        for s in otel.spans()
        if s.attributes and s.kind is SpanKind.PRODUCER
    }
    processes = otel.spans(f"process {unique_name}")
    assert len(publishes) == len(processes) == 100
    for process in processes:
        assert process.attributes is not None
        publish = publishes[process.attributes["messaging.message.id"]]
        assert process.context.trace_id == publish.context.trace_id
        assert process.parent is not None and process.parent.span_id == publish.context.span_id
        assert process.attributes["messaging.system"] == system
        assert process.attributes["server.address"] == "127.0.0.1"
        assert process.attributes["server.port"] == port
    assert len(otel.spans(f"ack {unique_name}")) == 100

    where = {"messaging.system": system}
    assert otel.total("messaging.client.sent.messages", where) == 100
    assert otel.total("messaging.client.operation.duration", where) == 100
    assert otel.total("messaging.client.consumed.messages", where) == 100
    assert otel.total("brokerpool.consumer.acks", where) == 100
    assert otel.total("brokerpool.connection.connects", where) == 1


def test_confirm_latency_is_recorded_per_message_and_per_batch_on_rabbitmq(
    otel: Recording, rabbitmq_url: str, unique_name: str
) -> None:
    with Connection(rabbitmq_url) as conn:
        queue = Queue(unique_name, durable=False, auto_delete=True)
        producer = Producer(conn, routing_key=unique_name, confirm_publish=True)
        producer.maybe_declare(queue)
        for _ in range(5):
            producer.publish(b"x")
        batching = Producer(conn, routing_key=unique_name)
        with batching.confirms(timeout=10):
            for _ in range(20):
                batching.publish(b"y")
        queue(conn.default_channel).purge()
    message = {"brokerpool.confirm.mode": "message", "brokerpool.confirm.outcome": "ack"}
    assert otel.total("brokerpool.confirm.duration", message) == 5
    assert otel.total("brokerpool.confirm.duration", {"brokerpool.confirm.mode": "batch"}) == 1
    assert otel.total("messaging.client.sent.messages") == 25


def test_the_asyncio_side_on_rabbitmq(otel: Recording, rabbitmq_url: str, unique_name: str) -> None:
    async def main() -> None:
        async with broker.aio.Connection(rabbitmq_url) as conn:
            queue = Queue(unique_name, durable=False, auto_delete=True)
            producer = broker.aio.Producer(conn, routing_key=unique_name, confirm_publish=True)
            await producer.maybe_declare(queue)
            for n in range(10):
                await producer.publish({"n": n})
            async with broker.aio.Consumer(conn, [queue]) as consumer:
                for _ in range(10):
                    message = await consumer.get(timeout=5)
                    await message.ack()

    asyncio.run(main())
    receives = otel.spans(f"receive {unique_name}")
    publishes = {s.context.span_id: s for s in otel.spans(f"publish {unique_name}")}
    assert len(receives) == len(publishes) == 10
    for receive in receives:
        assert receive.parent is not None and receive.parent.span_id in publishes
        assert receive.attributes is not None
        assert receive.attributes["messaging.system"] == "rabbitmq"
    assert otel.total("brokerpool.confirm.duration", {"brokerpool.confirm.mode": "message"}) == 10
    assert otel.total("brokerpool.consumer.acks", {"messaging.system": "rabbitmq"}) == 10
