"""kombu idioms on ``Connection``: its broker attributes, pickling, and ``publish``'s keywords."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from broker import ConfigurationError, Connection
from transports.amqp.transport import Transport as AmqpTransport
from transports.memory.transport import Transport as MemoryTransport

SECRET = "Zq9-distinctive-Pw"


def record_open(conn: Connection) -> None:
    """A module-level hook: it pickles by reference."""
    conn.info()


def record_close(conn: Connection, exc: BaseException | None) -> None:
    del conn, exc


# -- attributes ------------------------------------------------------------------


def test_attributes_describe_the_current_alternate() -> None:
    conn = Connection(f"amqp://app:{SECRET}@rabbit-a:5673/orders;amqps://rabbit-b//")

    assert conn.hostname == "rabbit-a"
    assert conn.port == 5673
    assert conn.userid == "app"
    assert conn.password == SECRET
    assert conn.virtual_host == "orders"
    assert conn.ssl is False
    assert conn.transport_cls is AmqpTransport
    assert conn.transport_cls.name == "amqp"

    conn.maybe_switch_next()

    assert conn.hostname == "rabbit-b"
    assert conn.port == 5671  # the scheme's default, not the first URL's port
    assert conn.userid == "guest"
    assert conn.virtual_host == "/"
    assert conn.ssl is True


def test_keyword_arguments_fill_what_the_url_leaves_out() -> None:
    conn = Connection("rabbit", userid="u", password=SECRET, virtual_host="v", port=1234)

    assert (conn.hostname, conn.port, conn.userid, conn.virtual_host) == ("rabbit", 1234, "u", "v")
    assert conn.password == SECRET


def test_memory_transport_class() -> None:
    assert Connection("memory://").transport_cls is MemoryTransport


def test_the_password_stays_out_of_repr_uri_and_info() -> None:
    conn = Connection(f"amqp://app:{SECRET}@rabbit-a//")

    assert SECRET not in repr(conn)
    assert SECRET not in conn.as_uri()
    assert SECRET not in str(conn.info())


# -- pickling --------------------------------------------------------------------


def test_a_connection_pickles_to_an_equivalent_unconnected_one() -> None:
    conn = Connection(
        f"amqp://app:{SECRET}@rabbit-a//;amqp://rabbit-b//",
        heartbeat=10,
        connect_timeout=3,
        transport_options={"confirm_publish": True},
        connection_name="worker-1",
    )

    copy = pickle.loads(pickle.dumps(conn))

    assert type(copy) is Connection
    assert copy is not conn
    assert not copy.connected
    assert copy.identity == conn.identity
    assert copy.as_uri(include_password=True) == conn.as_uri(include_password=True)
    assert copy.describe_alternates() == conn.describe_alternates()
    assert copy.transport_options == {"confirm_publish": True}
    assert copy.get_heartbeat_interval() == 10
    assert copy.info() == conn.info()


def test_the_failover_strategy_travels() -> None:
    conn = Connection("amqp://a//;amqp://b//;amqp://c//", failover_strategy="shuffle")

    copy = pickle.loads(pickle.dumps(conn))

    assert copy.info()["failover_strategy"] == "shuffle"
    assert sorted(copy.describe_alternates().split(";")) == sorted(
        conn.describe_alternates().split(";")
    )


def test_an_open_connection_pickles_unconnected_and_the_copy_works() -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue="pickled")
        assert conn.connected

        copy = pickle.loads(pickle.dumps(conn))

        assert conn.connected  # pickling left the original alone
        assert not copy.connected
        with copy:
            ok = copy.default_channel.queue_declare(queue="pickled", passive=True)
            assert ok is not None and ok.queue == "pickled"


def test_hooks_that_pickle_travel_and_those_that_do_not_are_left_out() -> None:
    opened: list[Any] = []
    conn = Connection("memory://", on_open=record_open, on_close=record_close)
    conn.on_connect.append(record_open)  # appended after construction
    conn.on_connect.append(lambda c: opened.append(c))  # a lambda does not pickle

    copy = pickle.loads(pickle.dumps(conn))

    assert copy.on_open == [record_open]
    assert copy.on_close == [record_close]
    assert copy.on_connect == [record_open]
    assert len(conn.on_connect) == 2  # the original keeps its lambda
    with copy:
        copy.connect()  # the hooks that travelled run
    assert opened == []


def test_a_clone_of_an_unpickled_connection_keeps_its_arguments() -> None:
    conn = Connection("amqp://rabbit-a//", heartbeat=5)

    clone = pickle.loads(pickle.dumps(conn)).clone(heartbeat=7)

    assert clone.hostname == "rabbit-a"
    assert clone.get_heartbeat_interval() == 7


# -- publish keywords ------------------------------------------------------------


def test_publish_rejects_an_unknown_keyword_and_names_it() -> None:
    with Connection("memory://") as conn:
        producer = conn.Producer(routing_key="nowhere")

        with pytest.raises(ConfigurationError, match="'colour'") as raised:
            producer.publish(b"x", colour="red")

        assert "message_id" in str(raised.value)  # lists what it takes


def test_publish_suggests_the_property_that_was_meant() -> None:
    with Connection("memory://") as conn:
        producer = conn.Producer(routing_key="nowhere")

        with pytest.raises(ConfigurationError, match="did you mean 'correlation_id'"):
            producer.publish(b"x", corelation_id="abc")


def test_publish_takes_the_amqp_properties_as_keywords() -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue="props")
        producer = conn.Producer(routing_key="props")

        producer.publish(
            b"x",
            message_id="m-1",
            correlation_id="c-1",
            reply_to="replies",
            timestamp=1700000000,
            type="job",
            app_id="tests",
        )
        message = conn.default_channel.basic_get(queue="props", no_ack=True)

    assert message is not None
    assert message.properties["message_id"] == "m-1"
    assert message.properties["correlation_id"] == "c-1"
    assert message.properties["reply_to"] == "replies"
    assert message.properties["type"] == "job"
