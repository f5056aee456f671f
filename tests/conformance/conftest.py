"""Fixtures of the channel conformance suite, parametrized over the transports.

Every test here runs once per transport: ``memory`` (the in-process broker,
wiped after each test by the autouse fixture in ``tests/conftest.py``) and
``amqp`` (the machine's RabbitMQ; skipped, or failed under ``CI=true``, when
it is down). Queue and exchange names come from the ``names`` fixture, which
deletes what a test created on RabbitMQ afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

import transports
from broker.errors import BrokerError
from tests.conformance import Connect, Names
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
    ]
)
def transport_name(request: pytest.FixtureRequest) -> str:
    """The transport under test."""
    if request.param == "amqp":
        request.getfixturevalue("rabbitmq_url")  # skip, or fail under CI, when RabbitMQ is down
    name: str = request.param
    return name


@pytest.fixture
def connect(transport_name: str) -> Iterator[Connect]:
    """A factory of connections through the registry; all are closed afterwards."""
    opened: list[TransportConnection] = []

    def _connect() -> TransportConnection:
        connection = transports.resolve(transport_name)().connect(PARAMS)
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
    if transport_name == "memory":
        return  # the autouse reset wipes the in-process broker
    cleaner = connect()
    for queue in created.queues:
        with contextlib.suppress(BrokerError), cleaner.channel() as ch:
            ch.queue_delete(queue)
    for exchange in created.exchanges:
        with contextlib.suppress(BrokerError), cleaner.channel() as ch:
            ch.exchange_delete(exchange)
