"""Fixtures of the asyncio tier; each module marks its coroutine tests with ``pytest.mark.asyncio``.

``url`` parametrizes a test over the asyncio transports: ``memory`` (the
in-process broker, wiped after each test by ``tests/conftest.py``) and
``amqp`` (the machine's RabbitMQ, skipped -- or failed under ``CI=true`` --
when it is down). Queue and exchange names come from ``unique_name``;
``cleanup`` deletes the queues a test names on the broker afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from broker.aio import Connection
from broker.aio.pools import reset as reset_aio_pools
from tests.support.faultproxy import FaultProxy


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("amqp", id="amqp", marks=pytest.mark.broker),
    ]
)
def url(request: pytest.FixtureRequest) -> str:
    """The broker URL of the transport under test."""
    if request.param == "amqp":
        rabbit: str = request.getfixturevalue("rabbitmq_url")
        return rabbit
    return "memory://"


@pytest.fixture
def made() -> list[str]:
    """Names of queues a test created on the broker; deleted after it by ``conn``."""
    return []


@pytest_asyncio.fixture
async def conn(url: str, made: list[str]) -> AsyncIterator[Connection]:
    """An asyncio connection to ``url`` (closed afterwards, with the queues in ``made``)."""
    connection = Connection(url, connect_timeout=5)
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
