"""The synchronous channel conformance suite, run on the asyncio transports.

The suite's test functions are imported as they are (``test_*.py`` here);
the fixtures below give them channels and connections of ``memory://``,
``amqp://`` and ``redis://`` for asyncio, made blocking by
:mod:`tests.aio.conformance.bridge`. ``params`` (on Redis, a key prefix of
the test's own), ``connection``, ``channel`` and ``names`` are the suite's own
fixtures; only the transport and the connection factory are replaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import transports
from tests.aio.conformance.bridge import BlockingConnection, LoopThread
from tests.conformance import Connect
from tests.conformance.conftest import channel, connection, names, params
from transports.base import ConnectionParams, TransportConnection

# The suite's own fixtures, on top of transport_name and connect below.
__all__ = ["channel", "connection", "names", "params"]


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory-aio"),
        pytest.param("amqp", id="amqp-aio", marks=pytest.mark.broker),
        pytest.param("redis", id="redis-aio", marks=pytest.mark.redis),
    ]
)
def transport_name(request: pytest.FixtureRequest) -> str:
    """The asyncio transport under test."""
    if request.param == "amqp":
        request.getfixturevalue("rabbitmq_url")  # skip, or fail under CI, when RabbitMQ is down
    name: str = request.param
    return name


@pytest.fixture
def connect(transport_name: str, params: ConnectionParams) -> Iterator[Connect]:
    """A factory of bridged asyncio connections; all are closed afterwards."""
    loop = LoopThread()
    opened: list[TransportConnection] = []

    def _connect() -> TransportConnection:
        transport = transports.resolve_async(transport_name)()
        bridged = BlockingConnection(loop, loop.run(transport.connect(params)))
        opened.append(bridged)
        return bridged

    yield _connect
    for bridged in opened:
        bridged.close()
    loop.close()
