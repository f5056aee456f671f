"""Fixtures shared by every test layer.

``rabbit_node`` -> :class:`~tests.support.rabbitnode.RabbitNode`
    An extra RabbitMQ node shared by the whole session (every tier that needs
    one gets the same), handed to each test running and free of memory
    alarms. A test may kill, stop or restart it: the next test that asks for
    it gets it started again (5-8 s). Raise alarms with ``set_memory_alarm``
    (tracked, so undone here), not a raw ``ctl``.
``rabbit_nodes`` -> ``tuple[RabbitNode, RabbitNode]``
    Two independent (unclustered) nodes A and B, same sharing rules; A is the
    ``rabbit_node``. Nodes that need a boot start in parallel.

Both skip with the reason when RabbitMQ or Erlang is not installed, and fail
instead under ``CI=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import pools
import transports.memory.transport
from tests.support.rabbitnode import RabbitNode, require_extra_nodes
from tests.support.services import (
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    RABBITMQ_URL,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_keys,
    require_service,
)


@pytest.fixture
def rabbitmq_url() -> str:
    """URL of the machine's RabbitMQ on 127.0.0.1:5672 (fails under CI when down)."""
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    return RABBITMQ_URL


@pytest.fixture
def redis_url() -> str:
    """URL of db 13 of the machine's Redis on 127.0.0.1:6379 (fails under CI when down)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return REDIS_URL


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test (or concurrent run) uses, e.g. ``"bp-test:1a2b3c4d:"``.

    Every key of db 13 on the machine's Redis that starts with it is deleted
    after the test, and only those: name all of a test's keys with it.
    """
    prefix = f"bp-test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_redis_keys(prefix)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A queue/exchange name no other test (or concurrent run) uses."""
    return f"bp-test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _fresh_memory_broker() -> Iterator[None]:
    """Every test starts with an empty in-process broker and the default pool limit."""
    yield
    transports.memory.transport.reset()
    pools.reset()
    pools.set_limit(pools.DEFAULT_LIMIT)


class _NodePool:
    """Session-wide nodes, created on first demand and kept until the session ends."""

    def __init__(self) -> None:
        self.nodes: list[RabbitNode] = []

    def running(self, count: int) -> list[RabbitNode]:
        while len(self.nodes) < count:
            self.nodes.append(RabbitNode())
        wanted = self.nodes[:count]
        for node in wanted:  # launch every stopped node first so that boots overlap
            node.start(wait=False)
        for node in wanted:
            node.reset()
        return wanted

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture(scope="session")
def _rabbit_node_pool() -> Iterator[_NodePool]:
    require_extra_nodes()
    pool = _NodePool()
    yield pool
    pool.close()


@pytest.fixture
def rabbit_node(_rabbit_node_pool: _NodePool) -> RabbitNode:
    """The session's extra node, running and alarm-free (see module docstring)."""
    return _rabbit_node_pool.running(1)[0]


@pytest.fixture
def rabbit_nodes(_rabbit_node_pool: _NodePool) -> tuple[RabbitNode, RabbitNode]:
    """Two independent running nodes A and B (see module docstring)."""
    a, b = _rabbit_node_pool.running(2)
    return a, b
