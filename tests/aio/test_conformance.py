"""The asyncio conformance suite: the same behaviour on ``memory://``, ``amqp://`` and ``redis://``.

Channel scenarios follow the synchronous suite (``tests/conformance``) and
share its routing table (``tests/support/routing_cases.py``); façade
scenarios follow ``docs/asyncio.rst``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker import Exchange, Queue
from broker.aio import Connection
from broker.errors import ChannelError, MessageUnroutable, NotFound, RecoverableChannelError
from tests.support.routing_cases import TOPIC_CASES

pytestmark = pytest.mark.asyncio


async def test_queue_declare_reports_name_and_counts(conn: Connection, unique_name: str,
                                                     made: list[str]) -> None:  # fmt: skip
    channel = await conn.channel()
    ok = await channel.queue_declare(unique_name, auto_delete=False)
    made.append(unique_name)
    assert ok is not None and (ok.queue, ok.message_count, ok.consumer_count) == (unique_name, 0, 0)


async def test_passive_declare_of_missing_queue_raises_not_found_and_closes_the_channel(
    conn: Connection, unique_name: str
) -> None:
    channel = await conn.channel()
    with pytest.raises(NotFound):
        await channel.queue_declare(unique_name, passive=True)
    assert not channel.is_open
    with pytest.raises(RecoverableChannelError):
        await channel.queue_declare(unique_name, passive=True)
    assert conn.connected  # only the channel was closed


async def test_server_named_queue_gets_its_name(conn: Connection) -> None:
    channel = await conn.channel()
    ok = await channel.queue_declare("", exclusive=True)
    assert ok is not None and ok.queue.startswith("amq.gen-")


async def test_publish_and_get_round_trip_body_properties_and_headers(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    channel = await conn.channel()
    await channel.queue_declare(unique_name, auto_delete=False)
    made.append(unique_name)
    msg = channel.prepare_message(
        b"payload", content_type="application/x-test", application_headers={"h": 1},
        message_id="m1", delivery_mode=2,
    )  # fmt: skip
    await channel.basic_publish(msg, "", unique_name)
    got = None
    for _ in range(50):
        got = await channel.basic_get(unique_name)
        if got is not None:
            break
        await asyncio.sleep(0.02)
    assert got is not None
    assert got.body == b"payload"
    assert got.properties["content_type"] == "application/x-test"
    assert got.properties["application_headers"] == {"h": 1}
    assert got.properties["message_id"] == "m1"
    assert got.delivery_info["routing_key"] == unique_name
    await channel.basic_ack(got.delivery_tag)
    assert await channel.basic_get(unique_name) is None


@pytest.mark.parametrize(("pattern", "key", "matches"), TOPIC_CASES[:8])
async def test_topic_routing_matches_the_shared_table(
    conn: Connection, unique_name: str, made: list[str], pattern: str, key: str, matches: bool
) -> None:
    exchange = Exchange(unique_name + "-x", "topic", durable=False, auto_delete=True)
    queue = Queue(unique_name, exchange, pattern, durable=False, auto_delete=False)
    made.append(unique_name)
    producer = conn.Producer(exchange=exchange)
    await producer.publish(b"m", routing_key=key, declare=[queue])
    sq = conn.SimpleQueue(queue)
    if matches:
        message = await sq.get(timeout=5)
        await message.ack()
    else:
        with pytest.raises(sq.Empty):
            await sq.get(timeout=0.3)
    await sq.close()


async def test_consumer_iterates_in_order_and_acks(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name)
    for i in range(20):
        await producer.publish({"n": i}, declare=[queue])
    seen = []
    async with conn.Consumer([queue], prefetch_count=5) as consumer:
        async for message in consumer:
            seen.append(message.payload["n"])
            await message.ack()
            if len(seen) == 20:
                break
    assert seen == list(range(20))


async def test_prefetch_count_limits_unacked_deliveries(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name)
    for i in range(10):
        await producer.publish(i, declare=[queue])
    consumer = conn.Consumer([queue], prefetch_count=3)
    await consumer.consume()
    first = [await consumer.get(timeout=5) for _ in range(3)]
    with pytest.raises(TimeoutError):
        await consumer.get(timeout=0.3)
    await first[0].ack()
    fourth = await consumer.get(timeout=5)
    assert fourth.payload == 3
    await consumer.close()


async def test_reject_with_requeue_redelivers_flagged(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    sq = conn.SimpleQueue(unique_name, queue_opts={"durable": False})
    made.append(unique_name)
    await sq.put("again")
    first = await sq.get(timeout=5)
    await first.requeue()
    second = await sq.get(timeout=5)
    assert second.payload == "again"
    assert second.delivery_info["redelivered"] is True
    await second.ack()
    await sq.close()


async def test_callbacks_plain_and_async_get_payload_and_message(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    got: list[object] = []
    done = asyncio.Event()

    def plain(payload: object, message: object) -> None:
        got.append(("plain", payload))

    async def coro(payload: object, message: object) -> None:
        got.append(("async", payload))
        await message.ack()  # type: ignore[attr-defined]
        done.set()

    async with conn.Consumer([queue], callbacks=[plain, coro]):
        await conn.Producer(routing_key=unique_name).publish({"k": 1}, declare=[queue])
        await asyncio.wait_for(done.wait(), 5)
    assert got == [("plain", {"k": 1}), ("async", {"k": 1})]


async def test_per_message_confirms_and_unroutable_mandatory(conn: Connection, unique_name: str,
                                                             made: list[str]) -> None:  # fmt: skip
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name, confirm_publish=True)
    await producer.publish(b"ok", declare=[queue])
    with pytest.raises(MessageUnroutable):
        await producer.publish(b"lost", routing_key=unique_name + "-nowhere", mandatory=True)


async def test_a_confirming_producer_hands_returns_to_on_return(
    conn: Connection, unique_name: str
) -> None:
    returned: list[tuple[str, str, bytes]] = []

    def on_return(exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        assert isinstance(exc, MessageUnroutable)
        returned.append((exchange, routing_key, message.body))

    producer = conn.Producer(confirm_publish=True, on_return=on_return)
    await producer.publish(b"back", routing_key=unique_name + "-nowhere", mandatory=True)
    assert returned == [("", unique_name + "-nowhere", b"back")]


async def test_pipelined_confirms_count_every_publish(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name)
    await producer.declare()
    await producer.maybe_declare(queue)
    async with producer.confirms(timeout=30, max_in_flight=100) as batch:
        for i in range(500):
            await producer.publish(i)
    assert (batch.published, batch.confirmed, batch.nacked, batch.unconfirmed) == (500, 500, [], [])
    assert await conn.SimpleQueue(queue).qsize() == 500


async def test_publish_to_missing_exchange_fails_the_channel_not_the_connection(
    conn: Connection, unique_name: str
) -> None:
    producer = conn.Producer(confirm_publish=True)
    with pytest.raises(ChannelError):
        await producer.publish(b"x", exchange=unique_name + "-missing", routing_key="k")
    assert conn.connected


async def test_hooks_may_be_coroutines(url: str, connection_options: dict[str, Any]) -> None:
    events: list[str] = []

    async def opened(conn: Connection) -> None:
        events.append("open")

    def closed(conn: Connection, exc: BaseException | None) -> None:
        events.append(f"close {exc}")

    async with Connection(
        url, on_open=opened, on_close=closed, on_connect=[opened], **connection_options
    ) as conn:
        assert events == []  # lazy: no I/O before first use
        await conn.ensure_connection(max_retries=3)
    assert events == ["open", "open", "close None"]


async def test_publish_with_retry_reconnects_after_the_link_broke(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name, confirm_publish=True)
    await producer.publish(1, declare=[queue])  # confirmed: the broker has it
    link = conn.transport_connection
    assert link is not None
    link.teardown()  # the link breaks under the producer
    await producer.publish(2, declare=[queue], retry=True, retry_policy={"interval_start": 0})
    assert conn.transport_connection is not link and conn.connected
    sq = conn.SimpleQueue(queue)
    assert sorted([(await sq.get(timeout=5)).payload for _ in range(2)]) == [1, 2]
    await sq.close()


async def test_autoretry_replaces_the_channel_after_a_recoverable_channel_error(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    channels: list[object] = []

    async def declare(name: str, channel: Any) -> object:
        channels.append(channel)
        if len(channels) == 1:
            await channel.close()
            raise RecoverableChannelError("the channel went away")
        return await channel.queue_declare(name, durable=False, auto_delete=False)

    made.append(unique_name)
    first = await conn.channel()
    call = conn.autoretry(declare, channel=first, interval_start=0, max_retries=2)
    ok, used = await call(unique_name)
    assert ok is not None and ok.queue == unique_name  # type: ignore[attr-defined]
    assert channels[0] is first and used is channels[1] is not first and used.is_open
