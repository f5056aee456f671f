"""Metrics on memory:// after a known workload: their values, names and units.

Recorded with the SDK's in-memory metric reader (see :mod:`tests.support.otel`);
every value is exact because the workload is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import broker.aio
from broker import Connection, Consumer, Producer, Queue
from broker.connection.callbacks import LifecycleCallbacks
from broker.errors import ConnectionLimitExceeded, HeartbeatTimeout
from broker.instrumentation.otel.semconv import METRICS
from tests.support.otel import Recording, recording
from tests.support.wait import wait_until


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


def test_a_hundred_publishes_consumed_acked_and_one_requeued(otel: Recording) -> None:
    with Connection("memory://") as conn:
        queue = Queue("otel-m")
        producer = Producer(conn, routing_key="otel-m")
        producer.maybe_declare(queue)
        for n in range(100):
            producer.publish({"n": n})
        seen: list[int] = []

        def on_message(body: Any, message: Any) -> None:
            seen.append(body["n"])
            if body["n"] == 7 and not message.delivery_info["redelivered"]:
                message.requeue()
            else:
                message.ack()

        with Consumer(conn, [queue], callbacks=[on_message]):
            while len(seen) < 101:
                conn.drain_events(timeout=2)

    publish = {"messaging.operation.name": "publish", "messaging.system": "memory"}
    assert otel.total("messaging.client.sent.messages", publish) == 100
    assert otel.total("messaging.client.operation.duration", publish) == 100
    assert otel.total("messaging.client.consumed.messages") == 101
    assert otel.total("messaging.process.duration") == 101
    assert otel.total("brokerpool.consumer.redeliveries") == 1
    assert otel.total("brokerpool.consumer.acks") == 100
    assert otel.total("brokerpool.consumer.rejects", {"brokerpool.requeue": True}) == 1
    assert otel.total("brokerpool.connection.connects") == 1
    # Synchronous confirms (memory://) have nothing to wait for: no confirm latency.
    assert otel.points("brokerpool.confirm.duration") == []


def test_a_confirms_block_records_one_batch_latency(otel: Recording) -> None:
    with Connection("memory://") as conn:
        producer = Producer(conn, routing_key="otel-b")
        producer.maybe_declare(Queue("otel-b"))
        with producer.confirms(timeout=5) as batch:
            for _ in range(10):
                producer.publish(b"x")
    assert batch.confirmed == 10
    assert otel.total("messaging.client.sent.messages") == 10
    where = {"brokerpool.confirm.mode": "batch", "brokerpool.confirm.outcome": "ack"}
    assert otel.total("brokerpool.confirm.duration", where) == 1


def test_three_pool_waits_and_the_gauges(otel: Recording) -> None:
    with Connection("memory://") as conn:
        pool = conn.Pool(limit=1)
        held = pool.acquire()
        for _ in range(3):
            got: list[Any] = []
            waiter = threading.Thread(target=lambda got=got: got.append(pool.acquire(block=True)))
            waiter.start()
            wait_until(lambda: pool.waiting == 1, timeout=5)
            kind = {"brokerpool.pool.kind": "ConnectionPool"}
            assert otel.total("brokerpool.pool.waiting", kind) == 1
            assert otel.total("brokerpool.pool.in_use") == 1
            held.release()
            waiter.join(5)
            held = got[0]
        with pytest.raises(ConnectionLimitExceeded):
            pool.acquire(block=True, timeout=0.01)
        assert otel.total("brokerpool.pool.in_use") == 1
        held.release()
        assert otel.total("brokerpool.pool.idle") == 1
        assert otel.total("brokerpool.pool.waiting") == 0
        pool.close()
    kind = {"brokerpool.pool.kind": "ConnectionPool", "brokerpool.pool.api": "sync"}
    waits = otel.points("brokerpool.pool.wait.duration")
    assert otel.total("brokerpool.pool.wait.duration", kind) == 4
    assert otel.total("brokerpool.pool.wait.duration", {"error.type": "timeout"}) == 1
    assert sum(p.sum for p in waits) > 0


def test_aio_pool_waits_are_recorded_the_same_way(otel: Recording) -> None:
    async def main() -> None:
        async with broker.aio.Connection("memory://") as conn:
            pool = broker.aio.pools.ConnectionPool(conn, limit=1)
            lease = await pool.acquire()
            waiting = asyncio.ensure_future(pool.acquire(block=True, timeout=5))
            while pool.waiting == 0:
                await asyncio.sleep(0)
            assert otel.total("brokerpool.pool.waiting", {"brokerpool.pool.api": "asyncio"}) == 1
            await lease.release()
            await (await waiting).release()
            await pool.close()

    asyncio.run(main())
    assert otel.total("brokerpool.pool.wait.duration", {"brokerpool.pool.api": "asyncio"}) == 1


def test_reconnects_by_reason_heartbeat_timeouts_and_failovers(otel: Recording) -> None:
    conn = Connection("memory://one//;memory://two//")
    conn.connect()
    conn.connection_lost(HeartbeatTimeout("the broker sent nothing for 2 heartbeat intervals"))
    conn.connect()
    conn.close()
    assert otel.total("brokerpool.connection.connects") == 2
    where = {"brokerpool.reconnect.reason": "HeartbeatTimeout"}
    assert otel.total("brokerpool.connection.reconnects", where) == 1
    assert otel.total("brokerpool.connection.heartbeat_timeouts") == 1
    [failover] = otel.points("brokerpool.connection.failovers")
    assert failover.value == 1
    assert failover.attributes["messaging.system"] == "memory"
    assert failover.attributes["brokerpool.failover.from"] == "one"


def test_blocked_seconds_are_added_when_unblocked_or_closed() -> None:
    # The blocked clock is time.monotonic: only that seconds were added is asserted.
    with recording() as otel:
        callbacks: LifecycleCallbacks[Any] = LifecycleCallbacks()
        callbacks.blocked("low on memory")
        callbacks.unblocked()
        callbacks.blocked("low on disk")
        callbacks.closed(object(), None)
        callbacks.unblocked()  # not blocked any more: adds nothing
        [point] = otel.points("brokerpool.connection.blocked.duration")
    assert point.value >= 0
    assert otel.metric("brokerpool.connection.blocked.duration").unit == "s"


def test_every_documented_metric_has_its_unit_and_description(otel: Recording) -> None:
    with Connection("memory://") as conn:
        Producer(conn, routing_key="otel-u").publish(b"x")
    for name in ("messaging.client.sent.messages", "messaging.client.operation.duration"):
        metric = otel.metric(name)
        assert metric.unit == METRICS[name].unit
        assert metric.description == METRICS[name].description
