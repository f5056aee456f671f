"""Failover across the three-node RabbitMQ cluster with a quorum queue: nothing confirmed is lost.

Two publishers (a confirm per message, and pipelined batches; both
``publish(retry=True)``) and two consumers acking by hand, every client with
all three nodes in its URL list (``failover_strategy='shuffle'``,
``heartbeat=2``), while members are killed (``kill -9``) or restarted. The
counts follow the project's method (see :mod:`tests.cluster.traffic`): no
confirmed message lost, no phantom, every duplicate explained by a redelivery
flag or a republish. Each test prints what it measured (run with ``-rP``):
the new leader's election, how long after each fault every client confirmed
or received again, the node each client was on, and the counts.

The scenarios run about a minute each (node boots dominate): they are marked
``slow`` and ``-m slow`` runs them alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from broker import Connection, Producer, Queue
from broker.errors import ConfirmTimeout, MessageNacked, OperationalError
from tests.cluster.traffic import Traffic, Verdict
from tests.support.rabbitcluster import RabbitCluster
from tests.support.rabbitnode import RabbitNode

HEARTBEAT = 2
#: Seconds a per-message publisher pauses after each message (the pipelined one: 10x, per
#: batch of 10): about 40 messages a second from each, a few thousand per scenario.
PACE = 0.02
#: Seconds a consumer works on each message before acking it: slower than the publishers,
#: so a backlog builds and every consumer holds a prefetch window unacked.
WORK = 0.03


def connector(cluster: RabbitCluster) -> Callable[[], Connection]:
    return lambda: Connection(
        cluster.urls, failover_strategy="shuffle", heartbeat=HEARTBEAT, connect_timeout=2
    )


def quorum_queue(name: str) -> Callable[[], Queue]:
    return lambda: Queue(name, queue_type="quorum")


def member_at(cluster: RabbitCluster, node: str | None) -> RabbitNode | None:
    """The member a client's ``info()['node']`` (``host:port``) names, if any."""
    return None if node is None else cluster.node_of(int(node.rsplit(":", 1)[1]))


def describe(pauses: dict[str, float]) -> str:
    return "longest pause " + ", ".join(f"{name} {took:.2f} s" for name, took in pauses.items())


def check(verdict: Verdict, traffic: Traffic) -> None:
    assert not traffic.errors(), traffic.errors()
    assert not verdict.lost, f"{len(verdict.lost)} confirmed messages lost: {verdict.lost[:20]}"
    assert not verdict.phantoms, f"never confirmed nor unknown: {verdict.phantoms[:20]}"
    assert not verdict.unexplained, f"unflagged duplicates: {verdict.unexplained[:20]}"
    assert verdict.confirmed >= verdict.published * 0.9


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_confirmed_message_is_lost_when_the_leaders_node_then_each_clients_node_dies(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    cluster = rabbit_cluster
    traffic = Traffic(connector(cluster), quorum_queue(unique_name), PACE, WORK)
    lines = []
    with traffic:
        traffic.wait_for_progress(time.monotonic())
        leader = cluster.wait_for_leader(unique_name)
        lines.append(f"clients on {traffic.nodes()}")
        killed_at = time.monotonic()
        cluster.kill(leader)
        elected = cluster.wait_for_leader(unique_name, timeout=60)
        election = time.monotonic() - killed_at
        paused = traffic.wait_for_progress(killed_at)
        consumers = max(paused[consumer.name] for consumer in traffic.consumers)
        lines.append(
            f"kill -9 of the leader's node {leader.nodename}: {elected.nodename} named leader "
            f"after {election:.2f} s; {describe(paused)}; consumers back within {consumers:.2f} s "
            f"(2 x heartbeat + election: {2 * HEARTBEAT + election:.2f} s); "
            f"{traffic.redelivered_since(killed_at)} redelivered copies so far"
        )
        assert max(paused.values()) < 60  # a hang guard, not a speed check
        cluster.start(leader)

        # Then the node each client is on, one at a time, each started again before the next.
        lines.append(f"clients on {traffic.nodes()}")
        members = [member_at(cluster, node) for node in traffic.nodes().values()]
        for member in dict.fromkeys(m for m in members if m is not None):
            on_it = [name for name, node in traffic.nodes().items()
                     if member_at(cluster, node) is member]  # fmt: skip
            killed_at = time.monotonic()
            cluster.kill(member)
            paused = traffic.wait_for_progress(killed_at)
            lines.append(
                f"kill -9 of {member.nodename} (the node of {', '.join(on_it) or 'nobody now'}): "
                f"{describe(paused)}; clients now on {traffic.nodes()}"
            )
            assert max(paused.values()) < 60
            cluster.start(member)
    verdict = traffic.verdict()
    print("\n[cluster failover] " + "\n[cluster failover] ".join([*lines, str(verdict)]))
    check(verdict, traffic)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_confirmed_message_is_lost_across_a_rolling_restart(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    cluster = rabbit_cluster
    traffic = Traffic(connector(cluster), quorum_queue(unique_name), PACE, WORK)
    lines = []
    with traffic:
        traffic.wait_for_progress(time.monotonic())
        for member in cluster.nodes:
            began = time.monotonic()
            cluster.restart(member)  # graceful stop, start, rejoined
            took = time.monotonic() - began
            paused = traffic.wait_for_progress(began)
            lines.append(
                f"restart of {member.nodename} ({took:.1f} s until it rejoined): "
                f"{describe(paused)}; clients now on {traffic.nodes()}"
            )
            assert max(paused.values()) < 60
    verdict = traffic.verdict()
    print("\n[rolling restart] " + "\n[rolling restart] ".join([*lines, str(verdict)]))
    check(verdict, traffic)


@pytest.mark.timeout(300)
def test_publishing_without_quorum_fails_clearly_and_resumes_when_quorum_returns(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    cluster = rabbit_cluster
    queue = Queue(unique_name, queue_type="quorum")
    with Connection(cluster.urls, connect_timeout=2) as conn:
        producer = Producer(conn, confirm_publish=True)
        producer.publish(b"before", routing_key=unique_name, declare=[queue])
        here = member_at(cluster, conn.info()["node"])
        others = [member for member in cluster.nodes if member is not here]
        for member in others:  # two of three gone: no majority for the queue
            cluster.kill(member)

        began = time.monotonic()
        with pytest.raises((ConfirmTimeout, OperationalError)) as caught:
            producer.publish(b"during", routing_key=unique_name, retry=True,
                             retry_policy={"timeout": 6}, confirm_timeout=3)  # fmt: skip
        failed_after = time.monotonic() - began
        error = caught.value
        if isinstance(error, OperationalError):  # the policy was spent on nacks
            assert isinstance(error.__cause__, (MessageNacked, ConfirmTimeout))
        else:
            assert "whether the broker stored them is unknown" in str(error)

        began = time.monotonic()
        cluster.start(others[0])
        producer.publish(b"after", routing_key=unique_name, retry=True,
                         retry_policy={"timeout": 60}, confirm_timeout=30)  # fmt: skip
        resumed_after = time.monotonic() - began
    cluster.heal()
    with Connection(cluster.urls) as conn, conn.channel() as channel:
        left = []
        while (message := channel.basic_get(queue=unique_name, no_ack=True)) is not None:
            left.append(message.body)
        channel.queue_delete(queue=unique_name)
    # "during" is unknown: stored once quorum returned, or not at all; never twice.
    assert left in ([b"before", b"during", b"after"], [b"before", b"after"])
    print(
        f"\n[quorum lost] publishing failed after {failed_after:.2f} s with "
        f"{type(error).__name__}: {error}\n[quorum lost] with one member back, the next "
        f"publish was confirmed {resumed_after:.2f} s after starting it"
    )
