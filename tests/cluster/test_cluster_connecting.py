"""Connecting to a cluster: the node each connection reached, spreading, a resolver, a pool.

Many clients given the same three URLs: with ``'round-robin'`` every one of
them connects to the first node and, when it dies, every one moves to the
second (a stampede); with ``'shuffle'`` they start spread over the three and
the ones on a dead node spread over the two left. The shuffles are seeded
(one seed per client), so the counts are the same on every run; they are
printed (run with ``-rP``). A pool's connections on a node that dies are
replaced on checkout (or fail over under ``retry=True``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from broker import Connection, Producer, Queue
from broker.connection.failover import shuffle
from broker.errors import RecoverableConnectionError
from tests.support.rabbitcluster import RabbitCluster

CLIENTS = 45


@contextlib.contextmanager
def clients(urls: Sequence[str], strategies: Sequence[Any]) -> Iterator[list[Connection]]:
    conns = [Connection(list(urls), failover_strategy=s, connect_timeout=2) for s in strategies]
    try:
        for conn in conns:
            conn.connect()
        yield conns
    finally:
        for conn in conns:
            conn.close()


def notice_and_reconnect(conn: Connection) -> None:
    """Find out whether the connection died (a read), and reconnect if it did."""
    with contextlib.suppress(TimeoutError, RecoverableConnectionError):
        conn.drain_events(timeout=0.05)
    conn.ensure_connection()


def where(conns: list[Connection]) -> collections.Counter[str]:
    return collections.Counter(conn.info()["node"] for conn in conns)


def test_shuffle_spreads_clients_over_live_nodes_where_round_robin_stampedes(
    rabbit_cluster: RabbitCluster,
) -> None:
    urls = rabbit_cluster.urls
    first, *rest = (f"127.0.0.1:{node.port}" for node in rabbit_cluster.nodes)
    seeded: list[Callable[..., Any]] = [
        functools.partial(shuffle, rng=random.Random(seed)) for seed in range(CLIENTS)
    ]
    with clients(urls, ["round-robin"] * CLIENTS) as plain, clients(urls, seeded) as shuffled:
        before = where(plain), where(shuffled)
        rabbit_cluster.kill(rabbit_cluster.nodes[0])
        for conn in (*plain, *shuffled):
            notice_and_reconnect(conn)
        after = where(plain), where(shuffled)
    print(
        f"\n[spreading] {CLIENTS} clients each, before the kill of {first}: round-robin "
        f"{dict(before[0])}, shuffle {dict(before[1])}; after: round-robin {dict(after[0])}, "
        f"shuffle {dict(after[1])}"
    )
    assert before[0] == {first: CLIENTS} and after[0] == {rest[0]: CLIENTS}  # the stampede
    assert set(before[1]) == {first, *rest}
    assert set(after[1]) == set(rest)  # the first node's clients spread over both survivors
    assert after[1][rest[0]] > before[1][rest[0]] and after[1][rest[1]] > before[1][rest[1]]


def test_a_resolver_is_asked_first_and_again_once_its_last_answer_was_tried(
    rabbit_cluster: RabbitCluster,
) -> None:
    first, *others = rabbit_cluster.nodes
    registry = [first.url]  # what a service registry would answer: one node for now
    asked: list[list[str]] = []

    def resolver() -> list[str]:
        asked.append(list(registry))
        return list(registry)

    # The URL given is a dead one: only the resolver's answers are ever tried.
    conn = Connection("amqp://127.0.0.1:1//", resolver=resolver, connect_timeout=2)
    try:
        conn.connect()
        assert conn.info()["node"] == f"127.0.0.1:{first.port}" and len(asked) == 1
        registry[:] = [node.url for node in others]  # the registry learns of the others...
        rabbit_cluster.kill(first)  # ...and the node in use dies
        notice_and_reconnect(conn)  # every node of the last answer was tried: ask again
        assert conn.info()["node"] in {f"127.0.0.1:{node.port}" for node in others}
    finally:
        conn.close()
    print(f"\n[resolver] asked {len(asked)} times; answers: {asked}")
    assert asked == [[first.url], [node.url for node in others]]


def test_info_names_the_node_reached_and_nothing_once_closed(
    rabbit_cluster: RabbitCluster,
) -> None:
    last = rabbit_cluster.nodes[-1]
    with Connection(["amqp://guest:guest@127.0.0.1:1//", last.url], connect_timeout=2) as conn:
        assert conn.info()["node"] is None
        conn.connect()
        assert conn.info()["node"] == f"127.0.0.1:{last.port}"
        assert conn.info()["hostname"] == "127.0.0.1" and conn.info()["port"] == last.port
    assert conn.info()["node"] is None


def test_a_pool_lends_live_connections_after_a_node_dies(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    template = Connection(
        rabbit_cluster.urls, connect_timeout=2,
        failover_strategy=functools.partial(shuffle, rng=random.Random(3)),
    )  # fmt: skip
    pool = template.Pool(limit=6, preload=6, verify_after=0)
    queue = Queue(unique_name, queue_type="quorum")
    try:
        leases = [pool.acquire() for _ in range(6)]
        before = collections.Counter(lease.resource.info()["node"] for lease in leases)
        for lease in leases:
            lease.release()
        victim, _ = before.most_common(1)[0]
        rabbit_cluster.kill(rabbit_cluster.node_of(int(victim.rsplit(":", 1)[1])))
        leases = [pool.acquire() for _ in range(6)]
        for lease in leases:  # each publishes through whatever it was given
            Producer(lease, confirm_publish=True).publish(
                b"x", routing_key=unique_name, declare=[queue], retry=True
            )
        after = collections.Counter(lease.resource.info()["node"] for lease in leases)
        for lease in leases:
            lease.release()
        shown = repr(pool)
    finally:
        pool.force_close_all()
    print(f"\n[pool] 6 connections on {dict(before)}; after kill -9 of {victim}: {dict(after)}")
    print(f"[pool] {shown}")
    assert victim not in after and sum(after.values()) == 6


@pytest.fixture(autouse=True)
def _all_members_running(rabbit_cluster: RabbitCluster) -> Iterator[None]:
    yield
    rabbit_cluster.heal()  # the next test (or module) gets every member back at once
