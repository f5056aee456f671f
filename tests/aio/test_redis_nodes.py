"""Reliability of ``redis://`` under the asyncio API, against private ``redis-server`` nodes.

The nodes are the reliability tier's (``redis_node_factory``, ``redis_nodes``:
private servers on loopback ports, closed after each test); the machine's
Redis on 6379 is never touched. What is checked, as for the synchronous
transport in ``tests/reliability/test_redis_reliability.py``:

* an asyncio consumer process killed with SIGKILL while holding unacked
  messages loses none: they come back, flagged redelivered, once its lease
  ran out -- and not before;
* ``kill -9`` of a node during confirmed publishing loses no confirmed
  message (the killed node appends every write to its AOF before answering,
  as a durable RabbitMQ queue would keep it), and the producer fails over;
* a consumer resumes on the other node after a ``kill -9``;
* a blackholed Redis is detected within about two heartbeats;
* an idle consumer sends Redis nothing but its lease renewals (no polling);
* ``rediss://`` works with the transport's TLS settings, and an unknown CA
  fails verification at once.

Loss is counted as in ``tests/reliability/test_no_loss.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from broker import Queue
from broker.aio import Connection
from broker.errors import (
    BrokerError,
    HeartbeatTimeout,
    NotFound,
    RecoverableConnectionError,
    TLSVerificationError,
)
from tests.reliability.conftest import redis_node_factory, redis_nodes
from tests.reliability.test_redis_tls import tls_redis
from tests.support.faultproxy import FaultProxy
from tests.support.redisnode import RedisNode
from tests.support.tls import TestPKI
from transports.redis.options import keyspace

# The reliability tier's node fixtures, shared (not copied).
__all__ = ["redis_node_factory", "redis_nodes", "tls_redis"]

pytestmark = [pytest.mark.asyncio, pytest.mark.extra_nodes, pytest.mark.timeout(120)]

CHILD = Path(__file__).with_name("redis_consumer_child.py")
REPO = Path(__file__).resolve().parents[2]
PREFIX = "bp-aio-rel:"
KEYS = keyspace(PREFIX, 0)  # what the transport's keys start with in db 0 (hash-tagged)
VT = 2.0  # visibility_timeout of the lease tests, in seconds


def options(visibility_timeout: float = VT) -> dict[str, Any]:
    return {"visibility_timeout": visibility_timeout, "key_prefix": PREFIX}


def raw(node: RedisNode) -> redis.Redis:
    """A plain redis-py client of ``node`` (to look at the keys, not through brokerpool)."""
    return redis.Redis.from_url(node.url(), socket_timeout=5, socket_connect_timeout=5)


async def publish(url: str, queue: str, count: int) -> None:
    """Put ``count`` numbered messages in ``queue`` (durable, not auto-deleted)."""
    async with Connection(url, transport_options=options()) as conn:
        producer = conn.Producer(routing_key=queue)
        declared = Queue(queue, durable=True, auto_delete=False)
        for seq in range(count):
            await producer.publish(str(seq).encode(), declare=[declared])


async def drain(url: str, queue: str) -> list[int]:
    """Every sequence number left in ``queue`` on the node at ``url``."""
    seqs: list[int] = []
    async with Connection(url, transport_options=options()) as conn:
        channel = await conn.channel()
        with contextlib.suppress(NotFound):  # a node that never got the queue
            while (msg := await channel.basic_get(queue, no_ack=True)) is not None:
                seqs.append(int(msg.properties["application_headers"]["seq"]))
    return seqs


def lease_expiry_ms(node: RedisNode, pid: int) -> float:
    """When the lease of process ``pid``'s connection runs out (Redis server time, ms)."""
    with raw(node) as client:
        leases = client.zrange(f"{KEYS}leases", 0, -1, withscores=True)
    mine = [score for member, score in leases if f":{pid}:" in member.decode()]
    assert len(mine) == 1, leases
    return float(mine[0])


async def test_a_killed_asyncio_consumer_loses_nothing_and_its_messages_return_after_the_lease(
    redis_nodes: tuple[RedisNode, RedisNode],
) -> None:
    a, _ = redis_nodes
    queue, total = "aio-kill-test", 100
    await publish(a.url(), queue, total)
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), a.url(), PREFIX, queue, str(total), str(VT),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().strip()
        assert line == f"holding {total} redelivered=0 pid={child.pid}", line
        async with Connection(a.url(), transport_options=options()) as conn:
            consumer = conn.Consumer([Queue(queue, durable=True, auto_delete=False)],
                                     prefetch_count=200)  # fmt: skip
            await consumer.consume()
            child.kill()
            await child.wait()
            killed_at = time.monotonic()
            expiry_ms = lease_expiry_ms(a, child.pid)  # renewed on the child's loop until killed
            received = [await consumer.get(timeout=VT + 8)]
            first_at = time.time()
            received += [await consumer.get(timeout=VT + 8) for _ in range(total - 1)]
            all_back = time.monotonic() - killed_at
            with pytest.raises(TimeoutError):  # anything more would be a duplicate
                await consumer.get(timeout=0.5)
            for message in received:
                await message.ack()
            seqs = collections.Counter(int(m.body) for m in received)
            print(
                f"\nasyncio redis kill test: {total} unacked, redelivered {len(received)} "
                f"{all_back:.2f}s after the kill (visibility_timeout={VT:g}s)"
            )
            assert set(seqs) == set(range(total)), "lost: " + str(set(range(total)) - set(seqs))
            assert sum(n - 1 for n in seqs.values()) == 0  # no duplicates
            assert all(m.delivery_info["redelivered"] for m in received)
            # Not before the lease could have expired (the same wall clock as Redis' TIME).
            assert first_at * 1000 >= expiry_ms - 20, (first_at * 1000, expiry_ms)
            assert all_back < VT + 8  # a hang guard: any connection's renewal sweeps dead leases
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    with raw(a) as client:
        assert list(client.scan_iter(match=f"{KEYS}u:*")) == []  # nothing left unacked
        assert client.zcard(f"{KEYS}leases") == 0  # the dead child's lease was swept


async def test_no_confirmed_message_is_lost_when_a_node_is_killed_during_publishing(
    redis_node_factory: Callable[..., RedisNode],
) -> None:
    # Every write reaches A's append-only file before A answers: confirmed means on disk.
    a = redis_node_factory(extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    b = redis_node_factory()
    a.start()
    b.start()
    queue, total = "aio-publish-kill-test", 1000
    declared = Queue(queue, durable=True, auto_delete=False)
    confirmed: set[int] = set()
    unknown: set[int] = set()
    async with Connection(
        f"{a.url()};{b.url()}", connect_timeout=2, transport_options=options(30)
    ) as conn:
        producer = conn.Producer(routing_key=queue, confirm_publish=True)
        for seq in range(total):
            if seq == total // 3:
                a.kill()
            try:
                await producer.publish(
                    {"seq": seq}, headers={"seq": seq}, declare=[declared], retry=True,
                    retry_policy={"interval_start": 0, "max_retries": 3},
                )  # fmt: skip
            except BrokerError:
                unknown.add(seq)
            else:
                confirmed.add(seq)
        assert conn.host == f"127.0.0.1:{b.port}"  # it failed over
    drained = await drain(b.url(), queue)
    a.start()  # reloads its append-only file
    drained += await drain(a.url(), queue)
    lost = confirmed - set(drained)
    phantoms = set(drained) - confirmed - unknown
    duplicates = len(drained) - len(set(drained))
    print(
        f"\nasyncio redis kill -9 during confirmed publishing: {len(confirmed)} confirmed, "
        f"{len(unknown)} unknown, {len(lost)} lost, {duplicates} duplicates"
    )
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:10]}"
    assert not phantoms
    assert len(confirmed) >= total * 0.9


async def test_a_consumer_resumes_on_the_other_node_after_a_kill(
    redis_nodes: tuple[RedisNode, RedisNode],
) -> None:
    a, b = redis_nodes
    name = "aio-resume-test"
    queue = Queue(name, durable=True, auto_delete=False)
    reconnected = asyncio.Event()
    async with Connection(
        f"{a.url()};{b.url()}", connect_timeout=2, transport_options=options(),
        on_connect=lambda conn: reconnected.set(),
    ) as conn:  # fmt: skip
        consumer = conn.Consumer([queue], prefetch_count=10)
        await consumer.consume()
        reconnected.clear()
        a.kill()
        await asyncio.wait_for(reconnected.wait(), 30)
        assert conn.host == f"127.0.0.1:{b.port}" and consumer.is_consuming
        # The recovery declared the queue on B and consumes from it there.
        await conn.Producer(routing_key=name).publish("on B", retry=True)
        message = await consumer.get(timeout=10)
        assert message.payload == "on B"
        await message.ack()
        await consumer.close()


async def test_a_blackholed_redis_is_detected_within_about_two_heartbeats(
    redis_nodes: tuple[RedisNode, RedisNode], fault_proxy: Callable[..., FaultProxy]
) -> None:
    a, _ = redis_nodes
    proxy = fault_proxy(a.port)
    lost: list[BaseException | None] = []
    async with Connection(
        f"redis://127.0.0.1:{proxy.port}/0", heartbeat=1, transport_options=options(),
        on_close=lambda c, e: lost.append(e),
    ) as conn:  # fmt: skip
        await conn.ensure_connection(max_retries=3)
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(RecoverableConnectionError):
            await conn.drain_events(timeout=30)
        elapsed = time.monotonic() - started
    print(f"\nasyncio redis blackhole detected after {elapsed:.2f} s at heartbeat=1")
    # A renewal each heartbeat, unanswered for two: about 3 s; a hang is the failure.
    assert elapsed < 8
    assert any(isinstance(e, HeartbeatTimeout) for e in lost)


async def test_an_idle_consumer_does_not_poll_redis(
    redis_nodes: tuple[RedisNode, RedisNode],
) -> None:
    a, _ = redis_nodes
    idle = 2.0
    async with Connection(a.url(), transport_options=options(300)) as conn:
        consumer = conn.Consumer([Queue("aio-idle-test", durable=True, auto_delete=False)])
        await consumer.consume()
        await asyncio.sleep(0.5)  # the one delivery call that starting to consume makes
        with raw(a) as client:
            client.config_resetstat()
            await asyncio.sleep(idle)
            calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        print(f"\nidle asyncio redis consumer: {calls} script calls in {idle:g} s")
        assert calls == 0, f"{calls} script calls in {idle:g} s of idling (lease renewal: 75 s)"
        await consumer.close()


async def test_rediss_round_trip_with_the_test_ca(tls_redis: tuple[int, TestPKI]) -> None:
    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.ca_cert}"
    async with Connection(url, transport_options=options()) as conn:
        queue = conn.SimpleQueue(Queue("over-tls", durable=False))
        body = "x" * 100_000  # several TLS records
        await queue.put(body)
        message = await queue.get(timeout=5)
        assert message.payload == body
        await message.ack()
        await queue.close()


async def test_an_unknown_ca_fails_verification_and_is_not_retried(
    tls_redis: tuple[int, TestPKI],
) -> None:
    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.other_ca_cert}"
    with pytest.raises(TLSVerificationError, match="TLS verification failed"):
        await Connection(url, connect_timeout=5).ensure_connection(max_retries=3)
