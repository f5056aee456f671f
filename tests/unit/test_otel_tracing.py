"""Spans on memory://: names, kinds, attributes, and the trace crossing the broker.

The synchronous and asyncio producers and consumers are recorded with the
SDK's in-memory exporter (see :mod:`tests.support.otel`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import broker.aio
from broker import Connection, Consumer, Exchange, Producer, Queue
from broker.errors import NotFound
from tests.support.otel import Recording, recording


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


def consume_one(conn: Connection, queue: Queue, settle: str = "ack") -> list[Any]:
    got: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(message)
        getattr(message, settle)()

    with Consumer(conn, [queue], callbacks=[on_message]):
        conn.drain_events(timeout=2)
    return got


def test_publish_and_process_continue_one_trace_across_the_broker(otel: Recording) -> None:
    with Connection("memory://guest:Sekrit-pw@localhost//") as conn:
        queue = Queue("otel-q", exchange=Exchange("otel-x", type="direct"), routing_key="k")
        producer = Producer(conn, exchange="otel-x", routing_key="k")
        producer.maybe_declare(queue)
        headers = {"app": "one"}
        producer.publish(
            {"secret": "the body"}, headers=headers, message_id="m-1", correlation_id="conv-9"
        )
        assert headers == {"app": "one"}  # the caller's headers are not touched
        [message] = consume_one(conn, queue)

    publish = otel.span("publish otel-x")
    process = otel.span("process otel-x")
    ack = otel.span("ack otel-x")
    assert publish.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert ack.kind is SpanKind.CLIENT
    # One trace: process is the publish span's child; the ack is under process, linked back.
    assert process.context.trace_id == publish.context.trace_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert ack.parent is not None and ack.parent.span_id == process.context.span_id
    assert [link.context.span_id for link in ack.links] == [publish.context.span_id]
    # The context travelled in the headers, as W3C traceparent.
    traceparent = message.headers["traceparent"]
    assert traceparent.split("-")[1] == trace.format_trace_id(publish.context.trace_id)
    assert message.headers["app"] == "one"

    assert publish.attributes == {
        "messaging.system": "memory",
        "server.address": "localhost",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "otel-x",
        "messaging.rabbitmq.destination.routing_key": "k",
        "messaging.message.id": "m-1",
        "messaging.message.conversation_id": "conv-9",
        "messaging.message.body.size": len(b'{"secret": "the body"}'),
    }
    assert process.attributes is not None
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.subscription.name"] == "otel-q"
    assert process.attributes["messaging.rabbitmq.message.delivery_tag"] == 1
    assert process.attributes["messaging.message.id"] == "m-1"
    assert ack.attributes is not None
    assert ack.attributes["messaging.operation.type"] == "settle"
    assert ack.attributes["messaging.operation.name"] == "ack"
    # Neither the body nor the password appears anywhere.
    for span in otel.spans():
        text = repr(dict(span.attributes or {})) + repr(span.events)
        assert "the body" not in text and "Sekrit-pw" not in text


def test_default_exchange_spans_are_named_after_the_queue(otel: Recording) -> None:
    with Connection("memory://") as conn:
        queue = Queue("otel-direct")
        producer = Producer(conn, routing_key="otel-direct")
        producer.maybe_declare(queue)
        producer.publish(b"raw")
        consume_one(conn, queue, settle="reject")
    publish = otel.span("publish otel-direct")
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == ""
    assert otel.span("process otel-direct").parent is not None
    reject = otel.span("reject otel-direct")
    assert reject.attributes is not None
    assert reject.attributes["messaging.operation.name"] == "reject"


def test_a_failed_publish_is_an_error_span(otel: Recording) -> None:
    with Connection("memory://") as conn, pytest.raises(NotFound):
        Producer(conn, exchange="missing-x", auto_declare=False).publish(b"x", retry=False)
    span = otel.span("publish missing-x")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "NotFound"
    assert [event.name for event in span.events] == ["exception"]


def test_the_publish_span_is_a_child_of_the_callers_span(otel: Recording) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with Connection("memory://") as conn:
        Producer(conn, routing_key="otel-child").maybe_declare(Queue("otel-child"))
        with tracer.start_as_current_span("request") as request:
            Producer(conn, routing_key="otel-child").publish(b"x")
    publish = otel.span("publish otel-child")
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id


def test_a_message_without_trace_context_starts_a_trace_of_its_own(otel: Recording) -> None:
    with Connection("memory://") as conn:
        queue = Queue("otel-plain")
        channel = conn.default_channel
        channel.queue_declare(queue="otel-plain", durable=True, auto_delete=False)
        channel.basic_publish(channel.prepare_message(b"x"), "", "otel-plain")
        consume_one(conn, queue)
    assert otel.span("process otel-plain").parent is None


def test_aio_producer_and_consumer_make_the_same_spans(otel: Recording) -> None:
    async def main() -> None:
        async with broker.aio.Connection("memory://") as conn:
            queue = Queue("otel-aio")
            producer = broker.aio.Producer(conn, routing_key="otel-aio")
            await producer.maybe_declare(queue)
            await producer.publish({"n": 1}, message_id="a-1")
            await producer.publish({"n": 2}, message_id="a-2")
            done = asyncio.Event()

            async def on_message(body: Any, message: broker.aio.Message) -> None:
                await message.requeue() if body["n"] == 2 else await message.ack()
                done.set()

            consumer = broker.aio.Consumer(conn, [queue], callbacks=[on_message])
            await consumer.consume()
            await asyncio.wait_for(done.wait(), 2)
            await consumer.cancel()
            async with broker.aio.Consumer(conn, [queue]) as iterating:
                message = await iterating.get(timeout=2)  # the requeued one
                await message.ack()

    asyncio.run(main())
    publishes = otel.spans("publish otel-aio")
    assert len(publishes) == 2
    process = otel.spans("process otel-aio")
    receive = otel.span("receive otel-aio")
    assert {s.kind for s in process} == {SpanKind.CONSUMER}
    by_id = {p.attributes["messaging.message.id"]: p for p in publishes if p.attributes}
    for span in [*process, receive]:
        assert span.attributes is not None
        parent = by_id[span.attributes["messaging.message.id"]]
        assert span.context.trace_id == parent.context.trace_id
        assert span.parent is not None and span.parent.span_id == parent.context.span_id
    assert receive.attributes is not None
    assert receive.attributes["messaging.operation.type"] == "receive"
    assert {s.name for s in otel.spans() if s.kind is SpanKind.CLIENT} == {
        "ack otel-aio",
        "requeue otel-aio",
    }
