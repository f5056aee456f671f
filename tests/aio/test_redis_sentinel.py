"""``sentinel://`` and replica confirms on asyncio, on a master, its replica and three Sentinels.

The deployment is the cluster tier's (``redis_sentinel``: private servers on
loopback ports, a few seconds to start, closed after each test); the
machine's Redis on 6379 is never touched. As for the synchronous transport in
``tests/cluster/test_sentinel_transport.py``: the connection finds the master
through a Sentinel (past a dead one) and names it in ``info()``; a confirmed
publish returns once the replica has the message (``WAIT``), raises
:class:`~broker.errors.ConfirmTimeout` when ``min_replicas`` asks for more
replicas than answer, and without ``min_replicas`` stops waiting once the
replica is gone; concurrent confirmed publishes share their ``WAIT``; and
after ``kill -9`` of the master a consumer resumes on the promoted replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from broker import Queue
from broker.aio import Connection, Producer
from broker.errors import ConfirmTimeout, IrrecoverableConnectionError
from tests.cluster.conftest import redis_sentinel
from tests.support.sentinel import MASTER_NAME, SentinelDeployment
from transports.redis.options import keyspace

# The cluster tier's deployment fixture, shared (not copied).
__all__ = ["redis_sentinel"]

pytestmark = [pytest.mark.asyncio, pytest.mark.extra_nodes, pytest.mark.timeout(120)]

KEYS = keyspace("brokerpool:", 0)  # where the default key prefix's keys live in db 0


def connect(deployment: SentinelDeployment, **options: Any) -> Connection:
    transport_options = {"master_name": MASTER_NAME, "visibility_timeout": 3.0, **options}
    return Connection(deployment.sentinel_urls, transport_options=transport_options,
                      heartbeat=1, connect_timeout=2)  # fmt: skip


def address(node: str | None) -> tuple[str, int]:
    assert node is not None
    host, _, port = node.rpartition(":")
    return host, int(port)


def on_replica(deployment: SentinelDeployment, queue: str) -> int:
    """How many messages the replica holds in ``queue`` (read on the replica itself)."""
    with redis.Redis.from_url(deployment.replica.url()) as replica:
        return int(replica.llen(f"{KEYS}q:{queue}"))


async def drain(conn: Connection, queue: str) -> list[bytes]:
    channel = await conn.channel()
    left = []
    while (message := await channel.basic_get(queue, no_ack=True)) is not None:
        left.append(message.body)
    return left


async def test_a_sentinel_url_list_reaches_the_master_even_past_a_dead_sentinel(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    redis_sentinel.sentinels[0].kill()
    async with connect(redis_sentinel) as conn:
        await conn.connect()
        # Asked in a thread: redis-py's Sentinel client blocks, retrying the dead Sentinel.
        master = await asyncio.to_thread(redis_sentinel.master_address)
        assert address(conn.info()["node"]) == master
        assert conn.transport.name == "sentinel"
        producer = Producer(conn, confirm_publish=True)
        await producer.publish(b"hello", routing_key=unique_name, declare=[Queue(unique_name)])
        assert await drain(conn, unique_name) == [b"hello"]


async def test_an_unknown_master_name_fails_at_once(redis_sentinel: SentinelDeployment) -> None:
    conn = Connection(redis_sentinel.sentinel_urls, transport_options={"master_name": "nope"})
    with pytest.raises(IrrecoverableConnectionError, match="monitors no master named 'nope'"):
        async with asyncio.timeout(5):  # not retried for the policy's 15 s (a hang guard)
            await conn.connect()


async def test_confirmed_publishes_wait_for_the_replica_or_fail_clearly(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    queue = Queue(unique_name)
    async with connect(redis_sentinel, min_replicas=1, replica_timeout=0.5) as strict, \
            connect(redis_sentinel, min_replicas=2, replica_timeout=0.5) as greedy, \
            connect(redis_sentinel) as default:  # fmt: skip
        confirming = Producer(strict, confirm_publish=True)
        await confirming.publish(b"1", routing_key=unique_name, declare=[queue])
        assert on_replica(redis_sentinel, unique_name) == 1  # confirmed: on the replica too
        await Producer(default, confirm_publish=True).publish(b"2", routing_key=unique_name)
        assert on_replica(redis_sentinel, unique_name) == 2
        with pytest.raises(ConfirmTimeout, match=r"1 of the 2 replica\(s\) that min_replicas"):
            await Producer(greedy, confirm_publish=True).publish(b"3", routing_key=unique_name)

        redis_sentinel.replica.kill()
        with pytest.raises(ConfirmTimeout, match=r"0 of the 1 replica\(s\) that min_replicas"):
            await confirming.publish(b"4", routing_key=unique_name)
        # Without min_replicas the wait is for 1 replica while the master has one: now none.
        await Producer(default, confirm_publish=True).publish(b"5", routing_key=unique_name)
        await Producer(strict).publish(b"6", routing_key=unique_name)  # no confirms: no wait
        left = await drain(default, unique_name)
    assert left == [b"1", b"2", b"3", b"4", b"5", b"6"]  # 3 and 4 stored, only not replicated


async def test_concurrent_confirmed_publishes_share_their_wait(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    count = 50
    async with connect(redis_sentinel, min_replicas=1) as conn:
        producer = Producer(conn, confirm_publish=True)
        await producer.publish(b"first", routing_key=unique_name, declare=[Queue(unique_name)])
        with redis.Redis.from_url(redis_sentinel.master.url()) as master:
            before = master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
            await asyncio.gather(*(
                producer.publish(str(seq).encode(), routing_key=unique_name)
                for seq in range(count)
            ))  # fmt: skip
            waits = master.info("commandstats")["cmdstat_wait"]["calls"] - before
        assert on_replica(redis_sentinel, unique_name) == count + 1  # every one confirmed there
        print(f"\n[aio sentinel] {count} concurrent confirmed publishes sent {waits} WAITs")
        assert 1 <= waits < count
        assert len(await drain(conn, unique_name)) == count + 1


async def test_a_consumer_resumes_on_the_promoted_replica_after_the_master_is_killed(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    queue = Queue(unique_name, durable=True, auto_delete=False)
    async with connect(redis_sentinel) as consuming, connect(redis_sentinel) as publishing:
        consumer = consuming.Consumer([queue])
        await consumer.consume()
        producer = Producer(publishing, confirm_publish=True)
        await producer.publish(b"before", routing_key=unique_name, declare=[queue], retry=True)
        first = await consumer.get(timeout=10)
        await first.ack()
        old = address(consuming.info()["node"])

        assert redis_sentinel.kill_master() == old
        new = await asyncio.to_thread(redis_sentinel.wait_for_failover, old)
        # The publisher reconnects through the Sentinels within its retry policy...
        await producer.publish(b"after", routing_key=unique_name, retry=True,
                               retry_policy={"timeout": 30})  # fmt: skip
        # ...and the consumer was recovered in the background, on the new master.
        second = await consumer.get(timeout=30)
        await second.ack()
        assert (first.body, second.body) == (b"before", b"after")
        assert address(consuming.info()["node"]) == new
        assert address(publishing.info()["node"]) == new
