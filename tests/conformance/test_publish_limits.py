"""The same publish limits on memory, RabbitMQ and Redis, and what a publish carries arrives intact.

A value AMQP cannot carry or RabbitMQ would refuse is a
:class:`~broker.errors.ConfigurationError` raised before anything is sent, on
every transport: the channel, the connection and the producer stay usable
(on RabbitMQ a bad header used to cost the connection). And what a publish
carries arrives as it was sent on every transport: empty bodies keep their
type, binary content types arrive as bytes, text in its declared encoding.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection, Message, Producer, Queue
from broker.errors import ConfigurationError
from tests.conformance import Names, get, publish
from tests.support.wait import wait_until
from transports.base import Channel, TransportConnection

BAD_PROPERTIES: list[dict[str, Any]] = [
    {"application_headers": {"id": uuid.UUID(int=1)}},
    {"application_headers": {"s": {1, 2}}},
    {"application_headers": {"o": object()}},
    {"application_headers": {"big": 2**64}},
    {"application_headers": {"k" * 256: 1}},
    {"application_headers": {"t": {"nested": [datetime.date(2024, 1, 1)]}}},
    {"priority": 300},
    {"priority": -1},
    {"delivery_mode": 7},
    {"expiration": "-1"},
    {"expiration": "1.5"},
    {"expiration": "99999999999999999999"},
    {"timestamp": -5},
    {"message_id": uuid.UUID(int=2)},
    {"correlation_id": "c" * 256},
]

BAD_ROUTES: list[tuple[Any, Any]] = [
    ("", 5),
    ("", b"bytes"),
    ("", "r" * 256),
    ("x" * 256, "key"),
]


def assert_still_usable(connection: TransportConnection, channel: Channel, queue: str) -> None:
    """The channel and its connection still work: a publish arrives."""
    assert channel.is_open and connection.is_open
    publish(channel, queue, b"afterwards")
    message = get(channel, queue, no_ack=True)
    assert message is not None and message.body == b"afterwards"


@pytest.mark.parametrize("properties", BAD_PROPERTIES)
def test_a_property_outside_the_limits_is_refused_before_it_is_sent(
    connection: TransportConnection, channel: Channel, names: Names, properties: dict[str, Any]
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    with pytest.raises(ConfigurationError):
        publish(channel, queue, b"refused", **properties)
    assert_still_usable(connection, channel, queue)
    assert channel.basic_get(queue, no_ack=True) is None  # the refused one never arrived


@pytest.mark.parametrize(("exchange", "routing_key"), BAD_ROUTES)
def test_a_route_outside_the_limits_is_refused_before_it_is_sent(
    connection: TransportConnection, channel: Channel, names: Names, exchange: Any, routing_key: Any
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    message = channel.prepare_message(b"refused")
    with pytest.raises(ConfigurationError):
        channel.basic_publish(message, exchange, routing_key)
    assert_still_usable(connection, channel, queue)


def test_values_at_the_limits_are_sent(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    headers = {"k" * 255: 2**63 - 1, "min": -(2**63), "list": [None, b"", {"t": True}]}
    publish(channel, queue, b"edge", application_headers=headers, priority=255,
            expiration="315360000000", delivery_mode=1, correlation_id="c" * 255)  # fmt: skip
    message = get(channel, queue, no_ack=True)
    assert message is not None and message.body == b"edge"
    assert message.properties["priority"] == 255
    assert message.properties["correlation_id"] == "c" * 255
    assert message.headers["k" * 255] == 2**63 - 1 and message.headers["min"] == -(2**63)


# -- through the façade: Producer and Message on every transport ----------------------------


@pytest.fixture
def conn(transport_name: str, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A :class:`broker.Connection` to the transport under test."""
    options: dict[str, Any] = {}
    if transport_name == "memory":
        url = "memory://"
    elif transport_name == "amqp":
        url = request.getfixturevalue("rabbitmq_url")
    else:
        url = request.getfixturevalue("redis_url")
        options["key_prefix"] = request.getfixturevalue("redis_key_prefix")
    with Connection(url, transport_options=options) as connection:
        yield connection


@pytest.fixture
def queue(conn: Connection, names: Names) -> str:
    name = names.queue()
    conn.default_channel.queue_declare(name, auto_delete=False)
    return name


def next_message(conn: Connection, queue: str) -> Message:
    """The next message of ``queue``, waiting briefly for RabbitMQ to route it."""
    found: list[Message] = []

    def arrived() -> bool:
        message = Queue(queue)(conn).get(no_ack=True)
        if message is not None:
            found.append(message)
        return bool(found)

    wait_until(arrived, message=f"no message in {queue!r}")
    return found[0]


@pytest.mark.parametrize("confirm", [False, True], ids=["unconfirmed", "confirmed"])
def test_a_refused_header_leaves_connection_and_producer_usable(
    conn: Connection, queue: str, confirm: bool
) -> None:
    with Producer(conn, routing_key=queue, confirm_publish=confirm) as producer:
        producer.publish(b"before")
        with pytest.raises(ConfigurationError, match=r"header 'id' holds UUID"):
            producer.publish(b"refused", headers={"id": uuid.uuid4()})
        with pytest.raises(ConfigurationError, match="routing_key must be a str"):
            producer.publish(b"refused", routing_key=42)
        assert conn.is_open
        producer.publish(b"after")
    assert next_message(conn, queue).body == b"before"
    assert next_message(conn, queue).body == b"after"


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"", b""), ("", ""), (b"x", b"x"), ("x", "x")],
    ids=["empty-bytes", "empty-str", "bytes", "str"],
)
def test_a_body_arrives_as_the_type_it_was_published_as(
    conn: Connection, queue: str, body: bytes | str, expected: bytes | str
) -> None:
    Producer(conn, routing_key=queue).publish(body)
    payload = next_message(conn, queue).payload
    assert payload == expected and type(payload) is type(expected)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "image/png", "application/x-protobuf"]
)
def test_binary_content_types_are_delivered_as_bytes(
    conn: Connection, queue: str, content_type: str
) -> None:
    body = b"\x89PNG\r\n\x1a\n\x00\xff"
    Producer(conn, routing_key=queue).publish(body, content_type=content_type)
    message = next_message(conn, queue)
    assert message.payload == body and message.content_type == content_type


def test_text_arrives_decoded_in_its_declared_encoding(conn: Connection, queue: str) -> None:
    Producer(conn, routing_key=queue).publish(
        "déjà vu", content_type="text/plain", content_encoding="latin-1"
    )
    message = next_message(conn, queue)
    assert message.body == "déjà vu".encode("latin-1")
    assert message.payload == "déjà vu"


def test_a_datetime_timestamp_is_sent_as_epoch_seconds_where_amqp_carries_them(
    transport_name: str, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    publish(channel, queue, b"stamped", timestamp=when)
    message = get(channel, queue, no_ack=True)
    assert message is not None
    # RabbitMQ carries whole seconds; the emulating transports keep what they were given.
    expected = int(when.timestamp()) if transport_name == "amqp" else when
    assert message.properties["timestamp"] == expected
