"""Confirmed Redis publishes wait for the replicas: the rules and the asyncio sharing of WAIT.

Without Redis: how many replicas a confirmed publish waits for
(:class:`~transports.redis.replicas.ReplicaTarget`, the synchronous and the
asyncio connection's rule, on an injected clock), and how the asyncio
connection's tasks share one ``WAIT`` (:class:`~transports.redis.aio.replicas.AsyncReplication`
on a scripted link whose ``WAIT`` replies when the test says). On the
machine's Redis, a master without replicas: ``min_replicas=1`` makes a
confirmed publish a :class:`~broker.errors.ConfirmTimeout`, and a connection
torn down under a waiting publish fails it with a recoverable error. With a
replica, see ``test_redis_sentinel.py``.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from broker import Queue
from broker.aio import Connection, Producer
from broker.errors import ConfirmTimeout, RecoverableConnectionError
from transports.redis.aio.replicas import AsyncReplication
from transports.redis.replicas import ReplicaTarget

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the rule -----------------------------------------------------------------------------


async def test_min_replicas_set_is_the_count_and_never_needs_counting() -> None:
    target = ReplicaTarget(2, interval=1.0)
    assert not target.stale() and not target.stale(shortfall=True)
    assert target.needed == 2
    assert ReplicaTarget(0, interval=1.0).needed == 0


async def test_unset_means_one_while_the_master_has_a_replica() -> None:
    clock = Clock()
    target = ReplicaTarget(None, interval=1.0, clock=clock)
    assert target.stale()  # counted on first use
    target.counted(2)
    assert target.needed == 1 and not target.stale()
    clock.now = 0.9
    assert not target.stale()
    assert target.stale(shortfall=True)  # a wait fell short: count again
    clock.now = 1.1
    assert target.stale()  # at most once per interval
    target.counted(0)
    assert target.needed == 0 and "auto" in repr(target)


# -- one WAIT shared by many tasks ----------------------------------------------------------


class ScriptedLink:
    """A link whose ``WAIT`` replies when the test calls ``answer(count)``."""

    where = "redis scripted:6379/0"

    def __init__(self, replicas: int = 1) -> None:
        self.connected = replicas
        self.waits: list[asyncio.Future[int]] = []
        self.counts = 0

    async def replicas(self) -> int:
        self.counts += 1
        return self.connected

    async def wait_for_replicas(self, count: int, timeout: float) -> int:
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waits.append(reply)
        return await reply

    async def sent(self, count: int) -> None:
        while len(self.waits) < count:
            await asyncio.sleep(0)

    def answer(self, acknowledged: int) -> None:
        self.waits[-1].set_result(acknowledged)


async def test_a_task_is_answered_only_by_a_wait_sent_after_it_asked() -> None:
    link = ScriptedLink()
    replication = AsyncReplication(link, ReplicaTarget(1, interval=1.0), seconds=0.5)
    first = asyncio.create_task(replication.replicate())
    await link.sent(1)
    # Written while the first WAIT was already on its way: it may not cover them.
    later = [asyncio.create_task(replication.replicate()) for _ in range(5)]
    await asyncio.sleep(0)
    link.answer(1)
    await first
    await link.sent(2)
    assert not any(task.done() for task in later)
    link.answer(1)
    await asyncio.gather(*later)
    assert len(link.waits) == 2  # six publishes, two WAITs
    assert "sent=2 idle" in repr(replication)


async def test_a_cancelled_task_does_not_cancel_the_wait_of_the_others() -> None:
    link = ScriptedLink()
    replication = AsyncReplication(link, ReplicaTarget(1, interval=1.0), seconds=0.5)
    leaving = asyncio.create_task(replication.replicate())
    await link.sent(1)
    staying = asyncio.create_task(replication.replicate())
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    assert not link.waits[0].cancelled()
    link.answer(1)
    await link.sent(2)
    link.answer(1)
    await staying


async def test_too_few_replicas_is_a_confirm_timeout_naming_them() -> None:
    link = ScriptedLink(replicas=1)
    replication = AsyncReplication(link, ReplicaTarget(2, interval=1.0), seconds=0.5)
    task = asyncio.create_task(replication.replicate())
    await link.sent(1)
    link.answer(1)
    with pytest.raises(ConfirmTimeout, match=r"1 of the 2 replica\(s\) that min_replicas"):
        await task
    assert link.counts == 0  # min_replicas set: nothing to count


async def test_without_min_replicas_a_replica_gone_since_the_count_fails_nothing() -> None:
    link = ScriptedLink(replicas=1)
    replication = AsyncReplication(link, ReplicaTarget(None, interval=60.0), seconds=0.5)
    task = asyncio.create_task(replication.replicate())
    await link.sent(1)
    link.connected = 0  # the replica went away while the WAIT was on its way
    link.answer(0)
    await task  # counted again after the shortfall: none to wait for
    assert link.counts == 2
    await replication.replicate()  # and none is waited for from now on
    assert len(link.waits) == 1


async def test_a_broken_link_fails_every_task_waiting() -> None:
    link = ScriptedLink()
    replication = AsyncReplication(link, ReplicaTarget(1, interval=1.0), seconds=0.5)
    first = asyncio.create_task(replication.replicate())
    await link.sent(1)
    link.waits[0].set_exception(RecoverableConnectionError("redis scripted: gone"))
    with pytest.raises(RecoverableConnectionError, match="gone"):
        await first
    again = asyncio.create_task(replication.replicate())  # the next call sends a new WAIT
    await link.sent(2)
    link.answer(1)
    await again


# -- the machine's Redis (a master without replicas) ----------------------------------------


@pytest.mark.redis
async def test_min_replicas_without_replicas_fails_confirmed_publishes_only(
    redis_url: str, redis_key_prefix: str, unique_name: str
) -> None:
    options = {"key_prefix": redis_key_prefix, "min_replicas": 1, "replica_timeout": 0.2}
    async with Connection(redis_url, transport_options=options) as conn:
        queue = Queue(unique_name)
        with pytest.raises(ConfirmTimeout, match=r"0 of the 1 replica\(s\) that min_replicas"):
            await Producer(conn, confirm_publish=True).publish(
                b"confirmed", routing_key=unique_name, declare=[queue]
            )
        await Producer(conn).publish(b"plain", routing_key=unique_name)  # no confirms: no wait
        channel = await conn.channel()
        left = []
        while (message := await channel.basic_get(unique_name, no_ack=True)) is not None:
            left.append(message.body)
    assert left == [b"confirmed", b"plain"]  # stored on the master, only not replicated


@pytest.mark.redis
async def test_a_publish_waiting_for_replicas_fails_recoverably_when_its_link_goes(
    redis_url: str, redis_key_prefix: str, unique_name: str
) -> None:
    options = {"key_prefix": redis_key_prefix, "min_replicas": 1, "replica_timeout": 2.0}
    async with Connection(redis_url, transport_options=options, connection_name=unique_name,
                          heartbeat=5) as conn:  # fmt: skip
        producer = Producer(conn, confirm_publish=True)
        publish = asyncio.create_task(
            producer.publish(b"m", routing_key=unique_name, declare=[Queue(unique_name)])
        )
        with redis.Redis.from_url(redis_url) as watcher:  # until Redis runs our WAIT (2 s)
            while not any(client["name"] == unique_name and client["cmd"] == "wait"
                          for client in watcher.client_list()):  # fmt: skip
                assert not publish.done(), publish
                await asyncio.sleep(0.01)
        conn.collect()  # the link goes away under the waiting publish
        with pytest.raises(RecoverableConnectionError, match="closed"):
            await publish
