"""Fixtures of the asyncio tier; each module marks its coroutine tests with ``pytest.mark.asyncio``.

``url`` parametrizes a test over the asyncio transports: ``memory`` (the
in-process broker, wiped after each test by ``tests/conftest.py``), ``amqp``
(the machine's RabbitMQ) and ``redis`` (db 13 of the machine's Redis); the
real servers are skipped -- or failed under ``CI=true`` -- when down. A test
that makes its own connection passes it ``connection_options`` (on Redis, a
key prefix of the test's own, whose keys are deleted afterwards). Queue and
exchange names come from ``unique_name``; ``made`` lists the queues ``conn``
deletes on the broker afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from broker.aio import Connection
from broker.aio.pools import reset as reset_aio_pools
from tests.support.faultproxy import FaultProxy


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("amqp", id="amqp", marks=pytest.mark.broker),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
def url(request: pytest.FixtureRequest) -> str:
    """The broker URL of the transport under test."""
    if request.param == "amqp":
        rabbit: str = request.getfixturevalue("rabbitmq_url")
        return rabbit
    if request.param == "redis":
        redis: str = request.getfixturevalue("redis_url")
        return redis
    return "memory://"


@pytest.fixture
def connection_options(url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments for every :class:`Connection` a test makes to ``url``.

    On Redis, a key prefix of the test's own (``redis_key_prefix``: its keys are
    deleted after the test); nothing elsewhere.
    """
    if url.startswith("redis"):
        return {"transport_options": {"key_prefix": request.getfixturevalue("redis_key_prefix")}}
    return {}


@pytest.fixture
def made() -> list[str]:
    """Names of queues a test created on the broker; deleted after it by ``conn``."""
    return []


@pytest_asyncio.fixture
async def conn(
    url: str, connection_options: dict[str, Any], made: list[str]
) -> AsyncIterator[Connection]:
    """An asyncio connection to ``url`` (closed afterwards, with the queues in ``made``)."""
    connection = Connection(url, connect_timeout=5, **connection_options)
    yield connection
    with contextlib.suppress(Exception):
        channel = await connection.channel()
        for name in made:
            await channel.queue_delete(name)
    await connection.close()
    await reset_aio_pools()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Make loopback fault proxies to a target port; all closed after the test."""
    made: list[FaultProxy] = []

    def make(target_port: int, target_host: str = "127.0.0.1") -> FaultProxy:
        proxy = FaultProxy(target_host, target_port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
