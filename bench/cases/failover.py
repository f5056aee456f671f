"""Case 8: time to fail over after ``kill -9`` of the broker a client is connected to.

Two private RabbitMQ nodes (tests/support/rabbitnode.py) are started for the
case. Each measurement connects a client to ``A;B``, publishes once (so it
is on A), SIGKILLs A, and times the next publish, retried through the
library's ``ensure``, until the broker confirms it on B. A is restarted in
the background and the roles swap for the next measurement.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases.common import BODY_100, need
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Skip

__all__ = ["Nodes", "cases"]

#: Retry settings given to both libraries' ``ensure``: no sleep before the
#: first failover, then short pauses.
RETRY: dict[str, Any] = {
    "max_retries": 20,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.5,
}


class Nodes:
    """Two running nodes; :meth:`pair` says which one to kill next."""

    def __init__(self, nodes: list[Any]) -> None:
        self.nodes = nodes
        self._turn = 0

    def pair(self) -> tuple[Any, Any]:
        """``(victim, survivor)``, both running (waits for a restarted node)."""
        victim, survivor = self.nodes[self._turn % 2], self.nodes[(self._turn + 1) % 2]
        for node in (victim, survivor):
            node.start(wait=False)
            node.wait_until_ready()
        return victim, survivor

    def killed(self, victim: Any) -> None:
        """Start the killed node again in the background; swap roles."""
        victim.start(wait=False)
        self._turn += 1


@contextlib.contextmanager
def _nodes(env: Env) -> Iterator[Nodes]:
    try:
        from tests.support.rabbitnode import RabbitNode, install_problem
    except ImportError as exc:
        raise Skip(f"tests/support/rabbitnode.py is not importable: {exc}") from exc
    problem = install_problem()
    if problem is not None:
        raise Skip(f"extra RabbitMQ nodes cannot start here: {problem}")
    nodes = [RabbitNode(), RabbitNode()]
    try:
        for node in nodes:  # boots overlap
            node.start(wait=False)
        for node in nodes:
            node.wait_until_ready()
        yield Nodes(nodes)
    finally:
        for node in nodes:
            node.close()


def _measure(env: Env, open_client: Callable[[str], tuple[Callable[[], None], Any]]) -> float:
    nodes: Nodes = env.shared
    victim, survivor = nodes.pair()
    publish, close = open_client(f"{victim.url};{survivor.url}")
    try:
        publish()  # connected to the victim now
        victim.kill()
        started = time.perf_counter()
        publish()
        elapsed = time.perf_counter() - started
    finally:
        nodes.killed(victim)
        close()
    return elapsed * 1000


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    def open_client(urls: str) -> tuple[Callable[[], None], Any]:
        conn = Connection(urls, connect_timeout=2)
        producer = conn.Producer(routing_key="bench-failover", confirm_publish=True)
        publish = conn.ensure(producer, producer.publish, **RETRY)
        return (lambda: publish(BODY_100)), conn.collect

    yield lambda: _measure(env, open_client)


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")

    def open_client(urls: str) -> tuple[Callable[[], None], Any]:
        conn = kombu.Connection(
            urls, connect_timeout=2, transport_options={"confirm_publish": True}
        )
        producer = conn.Producer(routing_key="bench-failover")
        publish = conn.ensure(producer, producer.publish, **RETRY)
        return (lambda: publish(BODY_100)), conn.collect

    yield lambda: _measure(env, open_client)


def cases() -> list[Case]:
    return [
        Case(
            key="failover",
            title="fail over after kill -9 of the broker",
            unit="ms",
            higher_is_better=False,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu},
            method=(
                "Two extra RabbitMQ nodes A and B. A client connected to 'A;B' publishes once, "
                "A is SIGKILLed, and the next publish (confirm_publish, through "
                "Connection.ensure with max_retries=20, interval_start=0, interval_step=0.1) is "
                "timed until B confirms it. The killed node restarts in the background and the "
                "roles swap. 5 rounds, no warm-up (each round costs a node restart)."
            ),
            rounds=5,
            warmup=False,
            fixture=_nodes,
            needs=frozenset({"nodes"}),
        )
    ]
