"""Fixtures of the channel conformance suite, parametrized over the transports.

Every test here runs once per transport: ``memory`` (the in-process broker,
wiped after each test by the autouse fixture in ``tests/conftest.py``),
``amqp`` (the machine's RabbitMQ) and ``redis`` (db 13 of the machine's
Redis, under a key prefix of the test's own, deleted afterwards); the real
servers are skipped, or failed under ``CI=true``, when down. Queue and
exchange names come from the ``names`` fixture, which deletes what a test
created on RabbitMQ afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

import transports
from broker.errors import BrokerError
from tests.conformance import Connect, Names
from tests.support.services import REDIS_DB, REDIS_HOST, REDIS_PORT
from transports.base import Channel, ConnectionParams, TransportConnection

#: memory ignores the host, port and login; amqp uses them.
PARAMS = ConnectionParams(
    hostname="127.0.0.1",
    port=5672,
    userid="guest",
    password="guest",
    virtual_host="/",
)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("amqp", id="amqp", marks=pytest.mark.broker),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
def transport_name(request: pytest.FixtureRequest) -> str:
    """The transport under test."""
    if request.param == "amqp":
        request.getfixturevalue("rabbitmq_url")  # skip, or fail under CI, when RabbitMQ is down
    name: str = request.param
    return name


@pytest.fixture
def params(transport_name: str, request: pytest.FixtureRequest) -> ConnectionParams:
    """Connection parameters for the transport under test."""
    if transport_name != "redis":
        return PARAMS
    prefix = request.getfixturevalue("redis_key_prefix")  # skips or fails when Redis is down
    return ConnectionParams(
        hostname=REDIS_HOST,
        port=REDIS_PORT,
        virtual_host=str(REDIS_DB),
        transport_options={"key_prefix": prefix},
    )


@pytest.fixture
def connect(transport_name: str, params: ConnectionParams) -> Iterator[Connect]:
    """A factory of connections through the registry; all are closed afterwards."""
    opened: list[TransportConnection] = []

    def _connect() -> TransportConnection:
        connection = transports.resolve(transport_name)().connect(params)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def connection(connect: Connect) -> TransportConnection:
    """An open connection of the transport under test."""
    return connect()


@pytest.fixture
def channel(connection: TransportConnection) -> Channel:
    """An open channel on :func:`connection`."""
    return connection.channel()


@pytest.fixture
def names(transport_name: str, unique_name: str, connect: Connect) -> Iterator[Names]:
    """Names no concurrent test uses; on RabbitMQ they are deleted after the test."""
    created = Names(unique_name)
    yield created
    if transport_name != "amqp":
        return  # memory is reset after each test; redis keys go with the test's prefix
    cleaner = connect()
    for queue in created.queues:
        with contextlib.suppress(BrokerError), cleaner.channel() as ch:
            ch.queue_delete(queue)
    for exchange in created.exchanges:
        with contextlib.suppress(BrokerError), cleaner.channel() as ch:
            ch.exchange_delete(exchange)
