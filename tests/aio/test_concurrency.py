"""Cancellation safety, many tasks on one connection, and the event loop never blocked."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

import pytest

from broker import Connection as SyncConnection
from broker import Queue
from broker.aio import ChannelPool, Connection
from broker.aio.pools import Lease
from broker.errors import ChannelLimitExceeded, OperationalError
from tests.support.net import SilentServer
from transports.base_aio import AsyncChannel

pytestmark = pytest.mark.asyncio


async def test_cancelled_get_loses_no_message(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    sq = conn.SimpleQueue(unique_name, queue_opts={"durable": False})
    made.append(unique_name)
    waiting = asyncio.create_task(sq.get(timeout=10))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await sq.put("kept")
    message = await sq.get(timeout=5)
    assert message.payload == "kept"
    await message.ack()
    await sq.close()


async def test_cancelled_drain_events_leaves_the_connection_usable(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    await conn.ensure_connection(max_retries=3)
    draining = asyncio.create_task(conn.drain_events(timeout=10))
    await asyncio.sleep(0.05)
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert conn.connected
    sq = conn.SimpleQueue(unique_name, queue_opts={"durable": False})
    made.append(unique_name)
    await sq.put(1)
    assert (await sq.get(timeout=5)).payload == 1
    await sq.close()


async def test_cancelled_publish_leaves_the_producer_usable(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    producer = conn.Producer(routing_key=unique_name, confirm_publish=True)
    await producer.maybe_declare(queue)
    tasks = [asyncio.create_task(producer.publish(i)) for i in range(50)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    sent = sum(1 for r in results if r is None)
    await producer.publish("last")
    assert await conn.SimpleQueue(queue).qsize() >= sent + 1


async def test_cancelled_acquire_leaves_the_pool_consistent(conn: Connection) -> None:
    pool = conn.ChannelPool(limit=1)
    lease = await pool.acquire()
    waiter = asyncio.create_task(_lease(pool))
    await asyncio.sleep(0.05)
    assert pool.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (pool.in_use, pool.waiting) == (1, 0)
    with pytest.raises(ChannelLimitExceeded):
        await pool.acquire()
    await lease.release()
    await lease.release()  # twice: given back once
    assert (pool.in_use, pool.idle) == (0, 1)
    async with pool.acquire(timeout=1) as channel:
        assert channel.is_open
    assert repr(pool) == "<aio.ChannelPool limit=1 in_use=0 idle=1 waiting=0>"
    await pool.close()


async def _lease(pool: ChannelPool) -> Lease[AsyncChannel]:
    return await pool.acquire(timeout=10)


async def test_a_thousand_tasks_share_one_connections_channels(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    queue = Queue(unique_name, durable=False)
    made.append(unique_name)
    pool = conn.ChannelPool(limit=20)
    await (await conn.default_channel()).queue_declare(unique_name, durable=False,
                                                        auto_delete=False)  # fmt: skip

    async def worker(i: int) -> None:
        async with pool.acquire(block=True, timeout=30) as channel:
            await channel.basic_publish(channel.prepare_message(str(i).encode()), "", unique_name)
            await channel.queue_declare(unique_name, passive=True)

    await asyncio.gather(*(worker(i) for i in range(1000)))
    assert conn.connected
    seen = set()
    async with conn.Consumer([queue], prefetch_count=200, no_ack=True) as consumer:
        async for message in consumer:
            seen.add(int(message.body))
            if len(seen) == 1000:
                break
    assert seen == set(range(1000))
    await pool.close()


async def test_a_sync_producer_and_an_async_consumer_share_one_memory_vhost(
    unique_name: str,
) -> None:
    queue = Queue(unique_name, durable=False)
    async with Connection("memory://") as conn:
        consumer = conn.Consumer([queue])
        await consumer.consume()

        def publish_from_a_thread() -> None:
            with SyncConnection("memory://") as sync:
                producer = sync.Producer(routing_key=unique_name)
                for i in range(100):
                    producer.publish({"i": i})

        thread = threading.Thread(target=publish_from_a_thread)
        thread.start()
        got = [(await consumer.get(timeout=5)).payload["i"] for _ in range(100)]
        thread.join()
        assert got == list(range(100))
        await consumer.close()


#: Messages published and consumed under asyncio's slow-callback watch.
MESSAGES_WATCHED = 300


async def test_nothing_blocks_the_loop_during_a_publish_and_consume_run(
    url: str,
    connection_options: dict[str, Any],
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    # What earlier tests left on the heap is not ours: keep the collector from
    # pausing a step to walk it.
    gc.collect()
    gc.freeze()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        async with Connection(url, **connection_options) as conn:
            queue = Queue(unique_name, durable=False, auto_delete=True)
            producer = conn.Producer(routing_key=unique_name)
            async with conn.Consumer([queue], prefetch_count=100) as consumer:
                # Every step of the run is watched, so a short run says as much as a
                # long one; a long one only adds chances for the OS to deschedule the
                # process for 50 ms on a busy machine (seen on Redis: ~3 round trips
                # per message).
                async with producer.confirms(timeout=30):
                    for i in range(MESSAGES_WATCHED):
                        await producer.publish(i)
                for _ in range(MESSAGES_WATCHED):
                    await (await consumer.get(timeout=10)).ack()
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = slow
        gc.unfreeze()
    slow_steps = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert slow_steps == []


async def test_a_worker_thread_acks_through_add_callback_threadsafe(
    conn: Connection, unique_name: str, made: list[str]
) -> None:
    sq = conn.SimpleQueue(unique_name, queue_opts={"durable": False})
    made.append(unique_name)
    await sq.put("work")
    message = await sq.get(timeout=5)
    worker = threading.Thread(target=conn.add_callback_threadsafe, args=(message.ack,))
    worker.start()
    await asyncio.to_thread(worker.join)
    for _ in range(100):  # the ack runs on the loop, as a task
        if message.acknowledged:
            break
        await asyncio.sleep(0.01)
    assert message.state == "ACK"
    await sq.close()


async def test_cancelling_an_acquire_while_it_connects_frees_its_place() -> None:
    with SilentServer() as hung:  # accepts, never answers: the connect hangs
        pool = Connection(hung.url, connect_timeout=30).Pool(limit=1)
        connecting = asyncio.create_task(pool.acquire(timeout=30).__aenter__())
        for _ in range(200):
            if hung.accepted:
                break
            await asyncio.sleep(0.01)
        assert pool.in_use == 1  # the place is taken while it connects
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert (pool.in_use, pool.idle, pool.waiting) == (0, 0, 0)
        await pool.close()


async def test_a_silent_broker_is_given_up_on_at_the_connect_timeout() -> None:
    with SilentServer() as hung:
        conn = Connection(hung.url, connect_timeout=0.5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(OperationalError):
            await conn.ensure_connection(max_retries=1, interval_start=0)
        assert asyncio.get_running_loop().time() - started < 10  # two attempts; a hang fails
