"""The ChannelOwner contract: how entities, producers and consumers find their connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker import Connection, Consumer, Exchange, Producer, Queue
from broker.entities.base import bound_channel
from broker.entities.owner import ChannelOwner, as_owner, owner_of
from pools import ResourceReleased
from transports.memory.transport import inspect


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


def test_a_connection_is_a_channel_owner_and_its_channels_say_so(conn: Connection) -> None:
    assert isinstance(conn, ChannelOwner)
    assert as_owner(conn) is conn
    channel = conn.channel()
    assert channel.owner is conn and owner_of(channel) is conn
    assert as_owner(channel) is None


def test_recognising_an_owner_does_no_io(conn: Connection) -> None:
    # Probing attributes would evaluate default_channel and connect.
    assert as_owner(conn) is conn
    with conn.Pool(1).acquire() as lease:
        assert as_owner(lease) is lease
        assert not lease.connected
    assert not conn.connected


def test_a_channel_of_a_bare_transport_connection_has_no_owner(conn: Connection) -> None:
    conn.connect()
    transport_conn = conn.transport_connection
    assert transport_conn is not None
    channel = transport_conn.channel()
    assert channel.owner is None and owner_of(channel) is None
    assert bound_channel(channel) == (channel, None)


def test_a_connection_stands_for_its_default_channel(conn: Connection) -> None:
    assert bound_channel(conn) == (conn.default_channel, conn)


def test_a_pool_lease_stands_for_the_connection_it_lends(conn: Connection) -> None:
    pool = conn.Pool(1)
    with pool.acquire() as lease:
        # The lease itself, not the connection: it refuses use once given back.
        assert as_owner(lease) is lease
        producer = Producer(lease, exchange=Exchange("logs", "fanout"))
        assert producer.connection is lease
        producer.publish(b"x")
        queue = Queue("q")(lease)
        queue.declare()
        assert queue.declaration_key in lease.resource.declared_entities
        assert queue in lease.resource.topology.queues
    with pytest.raises(ResourceReleased):
        as_owner(lease)
    pool.force_close_all()


def test_a_channel_lease_stands_for_the_channel(conn: Connection) -> None:
    with conn.ChannelPool(1).acquire() as lease:
        assert as_owner(lease) is None
        consumer = Consumer(lease, [Queue("jobs")], on_message=lambda m: None)
        assert consumer.connection is conn
        consumer.consume()
        assert conn.topology.consumers == [consumer]
        consumer.cancel()
    assert inspect()[0]["jobs"].consumers == 0
