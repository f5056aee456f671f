"""kombu's ``Connection`` surface beyond its attributes: ``.connection``, assignable
``transport_options``, ``SimpleQueue(channel=)``, transport facts.

On ``memory://`` and, where no I/O is needed, on ``amqp://`` and ``redis://``
URLs (constructing a Connection and assigning options never connect).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from broker import (
    ConfigurationError,
    Connection,
    NotFound,
    RecoverableConnectionError,
    SimpleBuffer,
    SimpleQueue,
)
from transports.memory.transport import MemoryConnection


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- .connection -----------------------------------------------------------------------------


def test_connection_connects_on_first_access(conn: Connection) -> None:
    assert conn.transport_connection is None

    link = conn.connection

    assert isinstance(link, MemoryConnection)
    assert conn.connected and conn.transport_connection is link
    assert conn.connection is link  # no second connect


def test_connection_is_none_after_close_until_the_next_connect(conn: Connection) -> None:
    conn.connect()
    conn.close()

    assert conn.connection is None
    assert not conn.connected

    assert conn.default_channel.is_open  # default_channel reconnects, as in kombu
    assert conn.connection is not None


def test_connection_replaces_a_link_that_broke(conn: Connection) -> None:
    first = conn.connection
    conn.collect()  # dropped without close(): not "closed" in kombu's sense

    second = conn.connection

    assert second is not None and second is not first


# -- transport_options ----------------------------------------------------------------------


def test_transport_options_are_assignable_and_copied(conn: Connection) -> None:
    given = {"confirm_publish": True}

    conn.transport_options = given
    given["confirm_publish"] = False

    assert conn.transport_options == {"confirm_publish": True}
    with pytest.raises(TypeError):
        conn.transport_options["x"] = 1  # type: ignore[index]
    assert conn.clone().transport_options == {"confirm_publish": True}
    assert pickle.loads(pickle.dumps(conn)).transport_options == {"confirm_publish": True}
    assert conn.info()["transport_options"] == {"confirm_publish": True}


@pytest.mark.parametrize("url", ["memory://", "amqp://h//", "redis://h:6379/0"])
def test_kombus_connect_retry_options_are_accepted_by_every_transport(url: str) -> None:
    options = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
        "connect_retries_timeout": 5,
    }
    assert Connection(url, transport_options=options).transport_options == options
    conn = Connection(url)
    conn.transport_options = options
    assert conn.transport_options == options


@pytest.mark.parametrize(
    "bad",
    [{"max_retries": "x"}, {"interval_start": -1}, {"connect_retries_timeout": float("nan")}],
)
def test_a_bad_connect_retry_option_is_refused_at_once(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Connection("memory://", transport_options=bad)


def test_assigning_checks_the_options_and_keeps_the_old_ones_on_error() -> None:
    conn = Connection("redis://h:6379/0", transport_options={"key_prefix": "a:"})

    with pytest.raises(ConfigurationError, match="unknown redis transport option"):
        conn.transport_options = {"key_prefixx": "b:"}
    with pytest.raises(ConfigurationError, match="mapping"):
        conn.transport_options = ["key_prefix"]  # type: ignore[assignment]

    assert conn.transport_options == {"key_prefix": "a:"}


def test_assigning_keeps_the_alternate_in_use() -> None:
    conn = Connection("amqp://a//;amqp://b//;amqp://c//")
    conn.maybe_switch_next()

    conn.transport_options = {"max_retries": 2}

    assert conn.hostname == "b"


def test_redis_takes_kombus_global_keyprefix_for_key_prefix() -> None:
    conn = Connection("redis://h:6379/0", transport_options={"global_keyprefix": "_p_"})
    assert conn.transport_options == {"global_keyprefix": "_p_"}

    with pytest.raises(ConfigurationError, match="same option"):
        Connection("redis://h/0", transport_options={"global_keyprefix": "a", "key_prefix": "b"})
    with pytest.raises(ConfigurationError, match="key_prefix"):
        Connection("redis://h/0", transport_options={"global_keyprefix": 5})


@pytest.mark.parametrize(
    ("url", "driver"), [("memory://", "N/A"), ("amqp://h//", "5."), ("redis://h/0", "")]
)
def test_transports_name_their_driver_version(url: str, driver: str) -> None:
    assert Connection(url).transport.driver_version().startswith(driver)


# -- SimpleQueue / SimpleBuffer ---------------------------------------------------------------


@pytest.mark.parametrize("factory", ["SimpleQueue", "SimpleBuffer"])
def test_simple_queues_take_a_channel_as_in_kombu(conn: Connection, factory: str) -> None:
    channel = conn.channel()

    queue = getattr(conn, factory)("jobs", channel=channel)
    queue.put({"n": 1})
    assert queue.get(timeout=1).payload == {"n": 1}
    queue.close()

    assert queue.channel is channel
    assert channel.is_open  # the caller's channel is not closed with the queue


def test_simple_queue_takes_kombus_positional_arguments(conn: Connection) -> None:
    queue = conn.SimpleQueue("jobs", True, {"durable": False}, {"x-max-length": 5})

    assert queue.no_ack is True
    assert queue.queue.durable is False
    assert queue.queue.queue_arguments == {"x-max-length": 5}
    queue.close()


def test_an_empty_simple_queue_is_true(conn: Connection) -> None:
    with conn.SimpleQueue("empty") as queue:
        assert len(queue) == 0
        assert queue
        assert bool(queue) is True


class AckFreeQueue(SimpleQueue):
    """A kombu-style subclass: class attributes are the defaults."""

    no_ack = True
    queue_args: ClassVar[dict[str, Any]] = {"x-max-priority": 5}


def test_class_attributes_are_the_defaults_as_in_kombu(conn: Connection) -> None:
    with AckFreeQueue(conn, "subclassed", queue_args={"x-max-length": 3}) as queue:
        assert queue.no_ack is True
        assert queue.queue.queue_arguments == {"x-max-priority": 5, "x-max-length": 3}
    with SimpleBuffer(conn, "buffer", no_ack=False) as buffer:
        assert SimpleBuffer.no_ack is True
        assert buffer.no_ack is False


# -- error tuples -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "amqp://h//", "redis://h/0"])
def test_error_tuples_are_the_transports_as_in_kombu(url: str) -> None:
    conn = Connection(url)
    transport = conn.transport_cls

    assert conn.connection_errors == transport.connection_errors
    assert conn.channel_errors == transport.channel_errors
    assert conn.recoverable_connection_errors == transport.recoverable_connection_errors
    assert conn.recoverable_channel_errors == transport.recoverable_channel_errors
    # What a broken link and a failed channel raise is caught by them.
    assert issubclass(RecoverableConnectionError, conn.connection_errors)
    assert issubclass(NotFound, conn.channel_errors)
