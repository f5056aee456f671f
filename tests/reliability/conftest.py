"""Fixtures for reliability tests: extra RabbitMQ and Redis nodes, loopback fault proxies.

Every test collected under ``tests/reliability`` is marked ``extra_nodes``
(deselect with ``-m "not extra_nodes"``).

Fixtures:

``rabbit_node``, ``rabbit_nodes``
    The session's shared extra nodes, defined in ``tests/conftest.py`` (the
    asyncio tier uses the same ones).
``rabbit_node_factory(**kwargs)`` -> ``RabbitNode``
    A fresh, not yet started node of this test's own (for example with
    TLS ``config_lines``); closed after the test.
``redis_node_factory(port=None, *, extra_args=(), start_timeout=10.0)`` -> ``RedisNode``
    A fresh, not yet started :class:`~tests.support.redisnode.RedisNode`
    (a private ``redis-server`` on a port of 6380-6399) of this test's own;
    every node made is closed after the test (no process is left).
``redis_nodes`` -> ``tuple[RedisNode, RedisNode]``
    Two independent running Redis nodes A and B of this test's own (a start
    takes about 10 ms), closed after the test.
``fault_proxy(target_port, target_host="127.0.0.1", listen_port=0)`` -> ``FaultProxy``
    A factory of :class:`~tests.support.faultproxy.FaultProxy` objects,
    all closed after the test.

The node fixtures skip with the reason when RabbitMQ or Erlang (or
``redis-server``) is not installed, and fail instead under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.rabbitnode import RabbitNode, require_extra_nodes
from tests.support.redisnode import RedisNode, require_redis_nodes

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``extra_nodes``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.extra_nodes)


@pytest.fixture
def rabbit_node_factory() -> Iterator[Callable[..., RabbitNode]]:
    """Make fresh nodes (``RabbitNode(**kwargs)``, not started), closed after the test."""
    require_extra_nodes()
    made: list[RabbitNode] = []

    def make(**kwargs: Any) -> RabbitNode:
        node = RabbitNode(**kwargs)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


@pytest.fixture
def redis_node_factory() -> Iterator[Callable[..., RedisNode]]:
    """Make fresh Redis nodes (``RedisNode(port, extra_args=...)``, not started), closed after."""
    require_redis_nodes()
    made: list[RedisNode] = []

    def make(
        port: int | None = None, *, extra_args: Sequence[str] = (), start_timeout: float = 10.0
    ) -> RedisNode:
        node = RedisNode(port, extra_args=extra_args, start_timeout=start_timeout)
        made.append(node)
        return node

    yield make
    errors: list[BaseException] = []
    for node in made:  # close them all even if one fails
        try:
            node.close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def redis_nodes(
    redis_node_factory: Callable[..., RedisNode],
) -> tuple[RedisNode, RedisNode]:
    """Two independent running Redis nodes A and B of this test's own (see module docstring)."""
    a, b = redis_node_factory(), redis_node_factory()
    a.start()
    b.start()
    return a, b


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Make :class:`FaultProxy` objects to a target port; all closed after the test."""
    made: list[FaultProxy] = []

    def make(target_port: int, target_host: str = "127.0.0.1", listen_port: int = 0) -> FaultProxy:
        proxy = FaultProxy(target_host, target_port, listen_port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
