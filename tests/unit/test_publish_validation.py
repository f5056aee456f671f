"""The limits every transport enforces on a publish (transports._shared.validation), and
what a producer on memory:// does when one is crossed: it raises before anything is sent
and stays usable, confirming or not, in a batch or not."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest

from broker import Connection
from broker.errors import ConfigurationError
from broker.messaging.producer import Producer
from tests.support.messaging import fetch
from transports._shared.validation import (
    MAX_EXPIRATION_MS,
    check_properties,
    check_route,
    check_table,
)

UTC = datetime.UTC

# -- what is accepted --------------------------------------------------------------------


def test_the_producers_usual_properties_pass() -> None:
    check_properties(
        {"content_type": "application/json", "content_encoding": "utf-8", "delivery_mode": 2}
    )
    check_route("", "a-queue")
    check_route("amq.topic", "a.b.c")


def test_every_basic_property_at_its_limits_passes() -> None:
    check_properties(
        {
            "content_type": "x" * 255,
            "content_encoding": "binary",
            "delivery_mode": 1,
            "priority": 255,
            "correlation_id": "é" * 127,  # 254 bytes in UTF-8
            "reply_to": "amq.rabbitmq.reply-to",
            "expiration": str(MAX_EXPIRATION_MS),
            "message_id": "m",
            "timestamp": 2**64 - 1,
            "type": "kind",
            "user_id": "guest",
            "app_id": "app",
            "cluster_id": "",
            "application_headers": {},
        }
    )
    check_properties({"priority": 0, "expiration": "0", "timestamp": 0})
    check_properties({"timestamp": datetime.datetime(1970, 1, 1, tzinfo=UTC)})


def test_none_values_and_unknown_property_names_are_left_alone() -> None:
    # Every transport drops them, as py-amqp does.
    check_properties({"priority": None, "expiration": None, "not_a_property": object()})


@pytest.mark.parametrize("expiration", ["60000", "+5", "-0", "0"])
def test_expiration_takes_what_rabbitmq_parses_as_an_integer(expiration: str) -> None:
    check_properties({"expiration": expiration})


def test_every_field_table_type_passes_nested_to_any_depth() -> None:
    check_table(
        {
            "s": "text",
            "b": b"\x00\xff",
            "t": True,
            "i": -(2**63),
            "I": 2**63 - 1,
            "f": float("nan"),
            "d": decimal.Decimal("-2147483.648"),
            "when": datetime.datetime(2024, 5, 6, tzinfo=UTC),
            "none": None,
            "list": [1, "two", [3.0, {"k": (None, b"")}]],
            "table": {"k": {"deeper": ["x"]}},
            "k" * 255: 1,
        }
    )


def test_headers_may_be_any_mapping_at_the_top() -> None:
    check_properties({"application_headers": MappingProxyType({"a": 1})})


# -- what is refused, named -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"id": uuid.UUID(int=1)}, r"header 'id' holds UUID"),
        ({"s": {1, 2}}, r"header 's' holds set"),
        ({"o": object()}, r"header 'o' holds object"),
        ({"when": datetime.date(2024, 1, 1)}, r"header 'when' holds date"),
        ({"big": 2**63}, r"header 'big' holds the int 9223372036854775808"),
        ({"small": -(2**63) - 1}, r"header 'small' holds the int"),
        ({"d": decimal.Decimal("1E+3")}, r"header 'd' holds the Decimal 1E\+3"),
        ({"d": decimal.Decimal("2147483648")}, r"header 'd' holds the Decimal"),
        ({"d": decimal.Decimal("NaN")}, r"header 'd' holds the Decimal NaN"),
        ({"old": datetime.datetime(1969, 12, 31, tzinfo=UTC)}, r"header 'old' .*before the epoch"),
        ({"nested": {"deep": [1, uuid.UUID(int=2)]}}, r"header 'nested'\['deep'\]\[1\] holds UUID"),
        ({"view": MappingProxyType({})}, r"header 'view' holds mappingproxy"),
        ({5: "x"}, r"application_headers has the key 5 of type int"),
        ({"k" * 256: 1}, r"application_headers has the key .*256 bytes long"),
        ({"t": {b"k": 1}}, r"header 't' has the key b'k' of type bytes"),
    ],
)
def test_a_header_ampq_cannot_carry_is_named_with_its_type(
    headers: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_properties({"application_headers": headers})


def test_headers_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="application_headers must be a dict"):
        check_properties({"application_headers": [("a", 1)]})


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"priority": 256}, r"priority must be an int in 0\.\.255, got int 256"),
        ({"priority": -1}, r"priority must be an int in 0\.\.255"),
        ({"priority": 1.5}, r"priority must be an int in 0\.\.255, got float"),
        ({"priority": True}, r"priority must be an int in 0\.\.255, got bool"),
        ({"delivery_mode": 7}, r"delivery_mode must be 1 \(transient\) or 2 \(persistent\)"),
        ({"delivery_mode": 0}, r"delivery_mode must be 1"),
        ({"delivery_mode": 2.0}, r"delivery_mode must be 1 .*got float"),
        ({"delivery_mode": "persistent"}, r"delivery_mode must be 1 .*got str"),
        ({"expiration": "-1"}, r"expiration must be .*milliseconds.*got '-1'"),
        ({"expiration": "1.5"}, r"expiration must be .*got '1\.5'"),
        ({"expiration": ""}, r"expiration must be"),
        ({"expiration": " 5"}, r"expiration must be"),
        ({"expiration": str(MAX_EXPIRATION_MS + 1)}, r"expiration must be"),
        ({"expiration": 5000}, r"expiration must be a str, got int"),
        ({"timestamp": -1}, r"timestamp must be .*non-negative int"),
        ({"timestamp": 1.5}, r"timestamp must be .*got float"),
        ({"timestamp": 2**64}, r"timestamp must be"),
        ({"timestamp": datetime.datetime(1900, 1, 1)}, r"timestamp .*before the epoch"),
        ({"message_id": uuid.UUID(int=3)}, r"message_id must be a str, got UUID"),
        ({"correlation_id": 42}, r"correlation_id must be a str, got int"),
        ({"content_type": "x" * 256}, r"content_type .* is 256 bytes long"),
        ({"app_id": "é" * 128}, r"app_id .* is 256 bytes long"),
    ],
)
def test_a_property_outside_its_limits_is_named(properties: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_properties(properties)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"content_type": "a/b", "content_encoding": "utf-8", "delivery_mode": 7}, "delivery_mode"),
        ({"content_type": "a/b", "content_encoding": "utf-8", "delivery_mode": True}, "got bool"),
        ({"content_type": 5, "content_encoding": "utf-8", "delivery_mode": 2}, "content_type"),
        ({"content_type": "a/b", "content_encoding": "x" * 300, "delivery_mode": 1}, "300 bytes"),
        ({"content_type": "a/b", "content_encoding": "utf-8", "priority": 999}, "priority"),
    ],
)
def test_the_plain_publishs_shape_with_a_bad_value_is_refused_too(
    properties: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_properties(properties)


@pytest.mark.parametrize(
    ("exchange", "routing_key", "message"),
    [
        ("", 5, r"routing_key must be a str, got int 5"),
        ("", b"key", r"routing_key must be a str, got bytes"),
        ("", None, r"routing_key must be a str, got NoneType"),
        ("", "r" * 256, r"routing_key .* is 256 bytes long"),
        ("", "é" * 128, r"routing_key .* is 256 bytes long"),
        ("x" * 256, "", r"exchange .* is 256 bytes long"),
        (["x"], "", r"exchange must be a str, got list"),
    ],
)
def test_a_route_outside_its_limits_is_named(exchange: Any, routing_key: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_route(exchange, routing_key)


def test_a_key_of_exactly_255_bytes_passes() -> None:
    check_route("x" * 255, "é" * 127 + "r")


# -- a producer on memory:// --------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


@pytest.fixture
def queue(conn: Connection) -> str:
    conn.default_channel.queue_declare("limits", auto_delete=False)
    return "limits"


BAD_PUBLISHES: list[dict[str, Any]] = [
    {"headers": {"id": uuid.UUID(int=4)}},
    {"headers": {"s": {1}}},
    {"priority": 300},
    {"delivery_mode": 7},
    {"routing_key": 5},
    {"routing_key": "r" * 300},
    {"message_id": object()},
]


@pytest.mark.parametrize("bad", BAD_PUBLISHES)
def test_a_refused_publish_leaves_the_producer_and_connection_usable(
    conn: Connection, queue: str, bad: dict[str, Any]
) -> None:
    producer = Producer(conn, routing_key=queue)
    with pytest.raises(ConfigurationError):
        producer.publish(b"refused", **bad)
    producer.publish(b"next")
    assert conn.is_open and conn.default_channel.is_open
    assert fetch(conn, queue).body == b"next"
    assert conn.default_channel.queue_declare(queue, passive=True).message_count == 0


@pytest.mark.parametrize("bad", BAD_PUBLISHES)
def test_a_refused_confirmed_publish_keeps_the_confirm_count(
    conn: Connection, queue: str, bad: dict[str, Any]
) -> None:
    with Producer(conn, routing_key=queue, confirm_publish=True) as producer:
        producer.publish(b"first")
        channel = producer.channel
        with pytest.raises(ConfigurationError):
            producer.publish(b"refused", **bad)
        producer.publish(b"second")
        assert producer.channel is channel  # no new channel was needed
    assert [fetch(conn, queue).body for _ in range(2)] == [b"first", b"second"]


def test_a_refused_publish_inside_a_batch_does_not_spoil_the_batch(
    conn: Connection, queue: str
) -> None:
    producer = Producer(conn, routing_key=queue)
    with producer.confirms() as batch:
        producer.publish(b"one")
        with pytest.raises(ConfigurationError, match="routing_key must be a str"):
            producer.publish(b"refused", routing_key=7)
        with pytest.raises(ConfigurationError, match="priority"):
            producer.publish(b"refused", priority=1000)
        producer.publish(b"two")
    assert batch.published == batch.confirmed == 2
    assert not batch.unconfirmed and not batch.nacked


@pytest.mark.parametrize(
    ("expiration", "sent"),
    [(5, "5000"), (1.5, "1500"), (0.001, "1"), (1.005, "1005"), (0, "0")],
)
def test_expiration_in_seconds_becomes_whole_milliseconds(
    conn: Connection, queue: str, expiration: float, sent: str
) -> None:
    Producer(conn, routing_key=queue).publish(b"x", expiration=expiration)
    assert fetch(conn, queue).properties["expiration"] == sent


@pytest.mark.parametrize(
    ("expiration", "message"),
    [
        ("5", r"expiration is a TTL in seconds, a non-negative number; got the str '5'"),
        (-1, r"expiration is a TTL in seconds, a non-negative number; got int -1"),
        (float("nan"), r"got float nan"),
        (float("inf"), r"expiration must be finite"),
        (True, r"got bool True"),
        (10 * 365 * 86400 + 1, r"expiration must be a str holding a whole number of milli"),
    ],
)
def test_an_expiration_that_is_not_seconds_is_refused(
    conn: Connection, queue: str, expiration: Any, message: str
) -> None:
    producer = Producer(conn, routing_key=queue)
    with pytest.raises(ConfigurationError, match=message):
        producer.publish(b"x", expiration=expiration)
    producer.publish(b"next")
    assert fetch(conn, queue).body == b"next"
