"""Self-tests of the RabbitMQ cluster harness, with raw py-amqp (not brokerpool).

The kill test prints what it measures (run with ``-s`` or ``-rP`` to see it):
how long after ``kill -9`` of a quorum queue's leader a new leader is named
and a confirmed publish goes through, and what became of the first publish.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp
import pytest
from amqp.exceptions import MessageNacked

from tests.support.rabbitcluster import RabbitCluster
from tests.support.rabbitnode import RabbitNode, pid_alive

QUORUM = {"x-queue-type": "quorum"}


@contextlib.contextmanager
def connect(node: RabbitNode, **kwargs: Any) -> Iterator[amqp.Connection]:
    conn = amqp.Connection(host=node.host, userid="guest", password="guest", **kwargs)
    conn.connect()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):  # the node may be dead by now
            conn.close()


def declare_quorum_queue(node: RabbitNode, name: str) -> None:
    with connect(node) as conn:
        conn.channel().queue_declare(name, durable=True, auto_delete=False, arguments=QUORUM)


def publish_confirmed(channel: amqp.Channel, queue: str, body: bytes, timeout: float) -> str:
    """Publish a persistent message and wait for its confirm: "acked", "nacked" or "no confirm"."""
    message = amqp.Message(body, delivery_mode=2)
    try:
        channel.basic_publish(message, routing_key=queue, confirm_timeout=timeout)
    except MessageNacked:
        return "nacked"
    except TimeoutError:
        return "no confirm"
    return "acked"


def drain(node: RabbitNode, queue: str) -> list[bytes]:
    bodies = []
    with connect(node) as conn:
        channel = conn.channel()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            bodies.append(message.body)
    return bodies


def test_the_cluster_has_three_running_members(rabbit_cluster: RabbitCluster) -> None:
    nodes = rabbit_cluster.nodes
    assert len(nodes) == 3
    assert len({node.port for node in nodes}) == 3
    for node in nodes:  # every member sees all three
        assert rabbit_cluster.running_members(via=node) == set(nodes)
        assert rabbit_cluster.node_of(node.port) is node
        with connect(node) as conn:
            assert conn.server_properties["product"] == "RabbitMQ"
    assert rabbit_cluster.urls == [f"amqp://guest:guest@127.0.0.1:{n.port}//" for n in nodes]
    assert rabbit_cluster.seed is nodes[0]
    with pytest.raises(LookupError):
        rabbit_cluster.node_of(5672)  # the machine's node is no member
    assert "formed running=3/3" in repr(rabbit_cluster)


def test_a_quorum_queue_declared_on_node_1_is_visible_from_node_3(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    first, _, third = rabbit_cluster.nodes
    declare_quorum_queue(first, unique_name)
    with connect(first, confirm_publish=True) as conn:
        conn.channel().basic_publish(
            amqp.Message(b"hello", delivery_mode=2), routing_key=unique_name
        )

    with connect(third) as conn:
        _, message_count, _ = conn.channel().queue_declare(unique_name, passive=True)
    assert message_count == 1
    assert drain(third, unique_name) == [b"hello"]
    assert rabbit_cluster.wait_for_leader(unique_name) in rabbit_cluster.nodes
    assert rabbit_cluster.leader_of(unique_name) in rabbit_cluster.nodes
    assert rabbit_cluster.leader_of(f"{unique_name}-never-declared") is None


def test_a_gracefully_stopped_member_rejoins_when_started(rabbit_cluster: RabbitCluster) -> None:
    node = rabbit_cluster.nodes[1]
    stop_began = time.monotonic()
    rabbit_cluster.stop(node)
    stopped_at = time.monotonic()
    assert not node.is_running
    assert rabbit_cluster.running_members() == set(rabbit_cluster.nodes) - {node}
    start_began = time.monotonic()
    rabbit_cluster.start(node)
    print(
        f"\n[cluster] graceful stop of {node.nodename} took {stopped_at - stop_began:.1f} s,"
        f" start until it rejoined {time.monotonic() - start_began:.1f} s"
    )
    assert rabbit_cluster.running_members(via=node) == set(rabbit_cluster.nodes)


def test_kill_of_the_leaders_node_elects_a_new_leader_and_the_node_rejoins(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    declare_quorum_queue(rabbit_cluster.seed, unique_name)
    leader = rabbit_cluster.wait_for_leader(unique_name)
    survivor = next(node for node in rabbit_cluster.nodes if node is not leader)
    confirmed: list[bytes] = []
    with connect(survivor, confirm_publish=True) as conn:
        channel = conn.channel()
        assert publish_confirmed(channel, unique_name, b"before", timeout=10) == "acked"
        confirmed.append(b"before")
        beam = leader.beam_pid
        assert beam is not None

        killed_at = time.monotonic()
        rabbit_cluster.kill(leader)
        assert not pid_alive(beam)
        with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
            probe.connect(("127.0.0.1", leader.port))

        # Right after the kill: acked, or nacked while the survivors elect a leader.
        body = b"right-after"
        first = outcome = publish_confirmed(channel, unique_name, body, timeout=30)
        first_took = time.monotonic() - killed_at
        retries = 0
        while outcome != "acked":
            assert time.monotonic() - killed_at < 60, "no publish was confirmed for 60 s"
            if outcome == "no confirm":  # a late confirm would be taken for the next one's
                channel = conn.channel()
            retries += 1
            body = b"retry-%d" % retries
            outcome = publish_confirmed(channel, unique_name, body, timeout=10)
        confirmed.append(body)
        acked_after = time.monotonic() - killed_at

    new_leader = rabbit_cluster.wait_for_leader(unique_name, timeout=60)
    named_after = time.monotonic() - killed_at
    assert new_leader is not leader and new_leader.is_running
    print(
        f"\n[cluster] kill -9 of the leader {leader.nodename}:"
        f" first confirmed publish {first} after {first_took:.3f} s;"
        f" first ack after {acked_after:.3f} s ({retries} retries);"
        f" rabbitmqctl names {new_leader.nodename} the leader after {named_after:.3f} s"
    )

    restart_began = time.monotonic()
    rabbit_cluster.restart(leader)
    took = time.monotonic() - restart_began
    print(f"[cluster] {leader.nodename} restarted and rejoined in {took:.1f} s")
    assert rabbit_cluster.running_members(via=leader) == set(rabbit_cluster.nodes)
    drained = drain(leader, unique_name)  # through the restarted node
    assert set(confirmed) <= set(drained)  # nothing confirmed was lost


# Last in this module: it closes the session's cluster (a later test would get a new one).
def test_closing_the_cluster_leaves_no_process_and_no_data_even_after_an_error(
    rabbit_cluster: RabbitCluster,
) -> None:
    cluster = rabbit_cluster
    nodes = cluster.nodes

    class TestBodyFailed(Exception):
        pass

    with pytest.raises(TestBodyFailed), cluster:  # leaving it closes, as the fixture does
        pids = cluster.pids()
        assert len(pids) >= 3 * 3  # each: launcher, beam, erl_child_setup at least
        assert {node.beam_pid for node in nodes} <= pids
        raise TestBodyFailed

    assert not [pid for pid in pids if pid_alive(pid)]
    assert not [node.base_dir for node in nodes if node.base_dir.exists()]
    assert not _processes_mentioning(*(node.nodename for node in nodes))
    assert "closed running=0/3" in repr(cluster)


def _processes_mentioning(*words: str) -> list[int]:
    """Pids whose command line names any of ``words`` (an orphaned beam would)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            if any(word in cmdline for word in words):
                found.append(int(entry))
    return found
