"""Traces cross the broker between brokerpool and pika / aio-pika under their instrumentations.

pika and aio-pika each have an OpenTelemetry instrumentation that writes the
W3C trace context into the message headers and reads it back. A message
published by either continues its trace when brokerpool consumes it, and a
message brokerpool publishes continues its trace in their consumers. All four
record into one in-memory exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import broker.aio
from broker import Connection, Consumer, Producer, Queue
from tests.support.otel import Recording, recording
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT, require_module

# All come with the test extra: skipped without them, but failing under CI=true.
pika = require_module("pika")
aio_pika = require_module("aio_pika")
pika_otel = require_module("opentelemetry.instrumentation.pika")
aio_pika_otel = require_module("opentelemetry.instrumentation.aio_pika")

pytestmark = pytest.mark.broker


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


@pytest.fixture
def pika_instrumented(otel: Recording) -> Iterator[None]:
    instrumentor = pika_otel.PikaInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def aio_pika_instrumented(otel: Recording) -> Iterator[None]:
    instrumentor = aio_pika_otel.AioPikaInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def queue(rabbitmq_url: str, unique_name: str) -> Iterator[Queue]:
    declared = Queue(unique_name, durable=False)
    with Connection(rabbitmq_url) as conn:
        declared(conn.default_channel).declare()
    yield declared
    with Connection(rabbitmq_url) as conn:
        conn.channel().queue_delete(unique_name)


#: The machine's RabbitMQ in pika's and aio-pika's URL form (vhost ``/``).
OTHER_URL = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/%2F"


def pika_parameters(url: str) -> Any:
    return pika.URLParameters(OTHER_URL)


def assert_continues(child: ReadableSpan, parents: list[ReadableSpan]) -> None:
    """``child`` continues the trace of one of ``parents`` as its child."""
    assert parents, "no parent spans"
    by_id = {p.context.span_id: p for p in parents}
    assert child.parent is not None and child.parent.span_id in by_id
    assert child.context.trace_id == by_id[child.parent.span_id].context.trace_id


def spans_of(otel: Recording, kind: SpanKind, library: str) -> list[ReadableSpan]:
    """The spans of ``kind`` recorded by the instrumentation package of ``library``."""
    scope = f"opentelemetry.instrumentation.{library}."
    return [
        s
        for s in otel.spans()
        if s.kind is kind
        and s.instrumentation_scope
        and f"{s.instrumentation_scope.name}.".startswith(scope)
    ]


def test_a_pika_publish_continues_its_trace_in_a_brokerpool_consumer(
    otel: Recording, pika_instrumented: None, rabbitmq_url: str, queue: Queue
) -> None:
    connection = pika.BlockingConnection(pika_parameters(rabbitmq_url))
    try:
        connection.channel().basic_publish("", queue.name, b"from pika")
    finally:
        connection.close()
    with Connection(rabbitmq_url) as conn:
        got: list[Any] = []
        with Consumer(conn, [queue], callbacks=[lambda body, m: (got.append(body), m.ack())]):
            conn.drain_events(timeout=5)
    assert got == [b"from pika"]
    # (pika's instrumentation makes two nested publish spans; the headers carry the inner one)
    published = spans_of(otel, SpanKind.PRODUCER, "pika")
    assert_continues(otel.span(f"process {queue.name}"), published)


def test_a_brokerpool_publish_continues_its_trace_in_a_pika_consumer(
    otel: Recording, pika_instrumented: None, rabbitmq_url: str, queue: Queue
) -> None:
    with Connection(rabbitmq_url) as conn:
        Producer(conn, routing_key=queue.name).publish(b"to pika")
    connection = pika.BlockingConnection(pika_parameters(rabbitmq_url))
    got: list[bytes] = []
    try:
        channel = connection.channel()

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            got.append(body)
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(queue.name, on_message)
        deadline = 50
        while not got and deadline:
            connection.process_data_events(time_limit=0.1)
            deadline -= 1
    finally:
        connection.close()
    assert got == [b"to pika"]
    [received] = spans_of(otel, SpanKind.CONSUMER, "pika")
    assert_continues(received, [otel.span(f"publish {queue.name}")])


def test_an_aio_pika_publish_continues_its_trace_in_a_brokerpool_aio_consumer(
    otel: Recording, aio_pika_instrumented: None, rabbitmq_url: str, queue: Queue
) -> None:
    async def main() -> None:
        connection = await aio_pika.connect(OTHER_URL)
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(b"from aio-pika"), routing_key=queue.name
            )
        async with broker.aio.Connection(rabbitmq_url) as conn:
            done = asyncio.Event()

            async def on_message(body: Any, message: broker.aio.Message) -> None:
                await message.ack()
                done.set()

            consumer = broker.aio.Consumer(conn, [queue], callbacks=[on_message])
            await consumer.consume()
            await asyncio.wait_for(done.wait(), 5)
            await consumer.cancel()

    asyncio.run(main())
    published = spans_of(otel, SpanKind.PRODUCER, "aio_pika")
    assert_continues(otel.span(f"process {queue.name}"), published)


def test_a_brokerpool_aio_publish_continues_its_trace_in_an_aio_pika_consumer(
    otel: Recording, aio_pika_instrumented: None, rabbitmq_url: str, queue: Queue
) -> None:
    async def main() -> None:
        async with broker.aio.Connection(rabbitmq_url) as conn:
            await broker.aio.Producer(conn, routing_key=queue.name).publish(b"to aio-pika")
        connection = await aio_pika.connect(OTHER_URL)
        async with connection:
            channel = await connection.channel()
            aqueue = await channel.get_queue(queue.name, ensure=False)
            done = asyncio.Event()

            async def on_message(message: Any) -> None:
                await message.ack()
                done.set()

            await aqueue.consume(on_message)
            await asyncio.wait_for(done.wait(), 5)

    asyncio.run(main())
    [received] = spans_of(otel, SpanKind.CONSUMER, "aio_pika")
    assert_continues(received, [otel.span(f"publish {queue.name}")])
