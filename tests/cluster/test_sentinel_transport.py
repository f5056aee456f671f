"""The sentinel:// transport on a master, its replica and three Sentinels (loopback).

The connection finds the master through a Sentinel, names it in ``info()``,
waits for the replica on confirmed publishes (``WAIT``, ``min_replicas``),
and follows a failover: after ``kill -9`` of the master during confirmed
publishing and consuming, no confirmed message and no unacked message is
lost (the dead connections' leases run out on the new master and their
unacked messages come back, flagged redelivered). The failover test prints
what it measured (run with ``-rP``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from broker import Connection, Producer, Queue
from broker.errors import ConfirmTimeout, IrrecoverableConnectionError
from tests.cluster.traffic import Traffic
from tests.support.sentinel import MASTER_NAME, SentinelDeployment
from tests.support.wait import wait_until
from transports.redis.options import keyspace

#: Short leases, so that a dead consumer's unacked messages come back within the test.
VISIBILITY_TIMEOUT = 3.0
PACE = 0.02
#: Consumers slower than the publishers: a backlog, and a full prefetch window unacked
#: in each consumer when the master dies.
WORK = 0.03


def connector(deployment: SentinelDeployment, **options: Any) -> Callable[[], Connection]:
    transport_options = {"master_name": MASTER_NAME, "visibility_timeout": VISIBILITY_TIMEOUT,
                         **options}  # fmt: skip
    return lambda: Connection(
        deployment.sentinel_urls, transport_options=transport_options, heartbeat=1,
        connect_timeout=2,
    )  # fmt: skip


def address(node: str | None) -> tuple[str, int]:
    assert node is not None
    host, _, port = node.rpartition(":")
    return host, int(port)


def test_a_sentinel_url_list_reaches_the_master_even_past_a_dead_sentinel(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    redis_sentinel.sentinels[0].kill()
    with connector(redis_sentinel)() as conn:
        conn.connect()
        assert address(conn.info()["node"]) == redis_sentinel.master_address()
        assert conn.transport_cls.name == "sentinel"
        producer = Producer(conn, confirm_publish=True)
        producer.publish(b"hello", routing_key=unique_name, declare=[Queue(unique_name)])
        message = Queue(unique_name)(conn).get(no_ack=True)
        assert message is not None and message.body == b"hello"


def test_an_unknown_master_name_fails_at_once(redis_sentinel: SentinelDeployment) -> None:
    conn = Connection(redis_sentinel.sentinel_urls, transport_options={"master_name": "nope"})
    began = time.monotonic()
    with pytest.raises(IrrecoverableConnectionError, match="monitors no master named 'nope'"):
        conn.connect()
    assert time.monotonic() - began < 5  # not retried for the policy's 15 s (a hang guard)


def test_confirmed_publishes_wait_for_the_replica_or_fail_clearly(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    queue = Queue(unique_name)
    with connector(redis_sentinel, min_replicas=1, replica_timeout=0.5)() as strict, \
            connector(redis_sentinel)() as default:  # fmt: skip
        confirming = Producer(strict, confirm_publish=True)
        confirming.publish(b"1", routing_key=unique_name, declare=[queue])
        Producer(default, confirm_publish=True).publish(b"2", routing_key=unique_name)
        with redis.Redis.from_url(redis_sentinel.replica.url()) as replica:
            # Confirmed means on the replica too: both are there already.
            assert replica.llen(f"{keyspace('brokerpool:', 0)}q:{unique_name}") == 2
        redis_sentinel.replica.kill()

        with pytest.raises(ConfirmTimeout, match=r"0 of the 1 replica\(s\) that min_replicas"):
            confirming.publish(b"3", routing_key=unique_name)
        # Without min_replicas the wait is for 1 replica while the master has one: now none.
        Producer(default, confirm_publish=True).publish(b"4", routing_key=unique_name)
        Producer(strict).publish(b"5", routing_key=unique_name)  # no confirms: no wait
        left = []
        while (message := Queue(unique_name)(default).get(no_ack=True)) is not None:
            left.append(message.body)
    assert left == [b"1", b"2", b"3", b"4", b"5"]  # "3" was stored, only not replicated


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_confirmed_or_unacked_message_is_lost_when_the_master_is_killed(
    redis_sentinel: SentinelDeployment, unique_name: str
) -> None:
    traffic = Traffic(connector(redis_sentinel), lambda: Queue(unique_name), PACE, WORK)
    with traffic:
        traffic.wait_for_progress(time.monotonic(), confirms=300)
        nodes = traffic.nodes()
        killed_at = time.monotonic()
        old = redis_sentinel.kill_master()
        new = redis_sentinel.wait_for_failover(old)
        failover = time.monotonic() - killed_at
        paused = traffic.wait_for_progress(killed_at, confirms=300)
        assert max(paused.values()) < 60  # a hang guard, not a speed check
        moved = traffic.nodes()
        # The dead connections' unacked messages come back once their leases run out
        # on the new master: the live consumers get them, flagged redelivered.
        wait_until(lambda: traffic.redelivered_since(killed_at), 30,
                   message="no unacked message of a dead connection came back")  # fmt: skip
        returned = traffic.redelivered_since(killed_at)
    # The dead connections' leases must run out before the last drain finds their messages.
    time.sleep(max(0.0, killed_at + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
    verdict = traffic.verdict()
    print(
        f"\n[sentinel failover] clients on {nodes}; kill -9 of the master {old}: the Sentinels "
        f"named {new} after {failover:.2f} s; longest pause "
        + ", ".join(f"{name} {took:.2f} s" for name, took in paused.items())
        + f"; clients now on {moved}; {returned} unacked messages of the dead connections "
        f"came back to the consumers\n[sentinel failover] {verdict}"
    )
    assert not traffic.errors(), traffic.errors()
    assert all(address(node) == new for node in moved.values())
    assert not verdict.lost, f"{len(verdict.lost)} confirmed messages lost: {verdict.lost[:20]}"
    assert not verdict.phantoms, f"never confirmed nor unknown: {verdict.phantoms[:20]}"
    assert not verdict.unexplained, f"unflagged duplicates: {verdict.unexplained[:20]}"
    assert verdict.confirmed >= verdict.published * 0.9
