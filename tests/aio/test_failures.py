"""Failures: broker-initiated cancels on every transport; on a real RabbitMQ, through the
loopback fault proxy, failover and blackholes (for Redis see ``test_redis_nodes.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from broker import Queue
from broker.aio import Connection
from broker.errors import HeartbeatTimeout, RecoverableConnectionError
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.asyncio


async def test_consumer_is_cancelled_by_the_broker_when_its_queue_is_deleted(
    conn: Connection, unique_name: str
) -> None:
    queue = Queue(unique_name, durable=False)
    consumer = conn.Consumer([queue])
    await consumer.consume()
    channel = await conn.channel()
    await channel.queue_delete(unique_name)
    received = [m async for m in consumer]  # ends: the broker cancelled the consumer
    assert received == []
    assert not consumer.is_consuming
    assert conn.consumers == []
    assert conn.connected


@pytest.mark.broker
async def test_a_blackholed_broker_is_detected_within_about_two_heartbeats(
    rabbitmq_url: str, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(5672)
    lost: list[BaseException | None] = []
    async with Connection(
        proxy.url_for(), heartbeat=2, on_close=lambda c, e: lost.append(e)
    ) as conn:
        await conn.ensure_connection(max_retries=3)
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(RecoverableConnectionError):
            await conn.drain_events(timeout=30)
        elapsed = time.monotonic() - started
    assert elapsed < 8  # about 2 x heartbeat (+ one timer period); a hang is the failure
    assert any(isinstance(e, HeartbeatTimeout) for e in lost)


@pytest.mark.broker
async def test_publish_with_retry_fails_over_to_the_next_alternate(
    rabbitmq_url: str, fault_proxy: Callable[..., FaultProxy], unique_name: str
) -> None:
    first, second = fault_proxy(5672), fault_proxy(5672)
    url = f"{first.url_for()};{second.url_for()}"
    queue = Queue(unique_name, durable=False, auto_delete=False)
    async with Connection(url) as conn:
        producer = conn.Producer(routing_key=unique_name, confirm_publish=True)
        await producer.publish(1, declare=[queue], retry=True)
        assert conn.host == first.host
        first.refuse()
        first.cut()
        await producer.publish(2, declare=[queue], retry=True)
        assert conn.host == second.host
        sq = conn.SimpleQueue(queue)
        assert sorted([(await sq.get(timeout=5)).payload for _ in range(2)]) == [1, 2]
        channel = await conn.channel()
        await channel.queue_delete(unique_name)


@pytest.mark.broker
async def test_a_consumer_resumes_on_the_other_broker_after_a_cut(
    rabbitmq_url: str, fault_proxy: Callable[..., FaultProxy], unique_name: str
) -> None:
    first, second = fault_proxy(5672), fault_proxy(5672)
    reconnected = asyncio.Event()
    queue = Queue(unique_name, durable=False, auto_delete=False)
    async with Connection(
        f"{first.url_for()};{second.url_for()}", on_connect=lambda c: reconnected.set()
    ) as conn:
        consumer = conn.Consumer([queue])
        await consumer.consume()
        reconnected.clear()
        first.refuse()
        first.cut(rst=True)
        await asyncio.wait_for(reconnected.wait(), 15)
        assert conn.host == second.host and consumer.is_consuming
        await conn.Producer(routing_key=unique_name).publish("after")
        message = await consumer.get(timeout=5)
        assert message.payload == "after"
        await message.ack()
        await consumer.close()
        channel = await conn.channel()
        await channel.queue_delete(unique_name)
