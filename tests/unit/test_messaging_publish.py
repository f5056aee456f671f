"""Producer on memory://: what goes on the wire, declaring, and publish(retry=True)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import ConfigurationError
from broker.messaging.message import Message
from broker.messaging.producer import Consumer, Producer
from tests.support.messaging import fetch
from transports.memory.transport import inspect, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- hello world -------------------------------------------------------------------


def test_kombu_style_hello_world(conn):
    media = Exchange("media", "direct")
    video = Queue("video", media, "video")
    producer = Producer(conn)
    producer.publish({"hello": "world"}, exchange=media, routing_key="video", declare=[video])
    received: list[tuple[Any, Message]] = []

    def handle(body: Any, message: Message) -> None:
        received.append((body, message))
        message.ack()

    with Consumer(conn, [video], callbacks=[handle]):
        conn.drain_events(timeout=1)
    assert [body for body, _ in received] == [{"hello": "world"}]
    message = received[0][1]
    assert message.content_type == "application/json"
    assert message.delivery_info["routing_key"] == "video"
    assert message.acknowledged


def test_producer_from_connection_declares_its_exchange_on_first_publish(conn):
    producer = Producer(conn, exchange=Exchange("logs", "fanout"))
    assert "logs" not in inspect()[1]  # constructing does no I/O
    producer.publish({"line": 1})
    assert inspect()[1]["logs"].type == "fanout"


# -- what goes on the wire ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        (b"\x00raw", "application/data", "binary"),
        ("text é", "text/plain", "utf-8"),
        ({"n": 1}, "application/json", "utf-8"),
    ],
)
def test_body_types_get_kombus_content_types(conn, body, content_type, encoding):
    Producer(conn).publish(body, routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    assert (message.content_type, message.content_encoding) == (content_type, encoding)
    assert message.payload == body


def test_delivery_mode_follows_exchange_durability(conn):
    Queue("q", Exchange("durable"), "k")(conn).declare()
    Queue("q", Exchange("transient", durable=False), "k")(conn).declare()
    Producer(conn, exchange="durable").publish(b"1", routing_key="k")
    Producer(conn, exchange=Exchange("transient", durable=False)).publish(b"2", routing_key="k")
    Producer(conn, exchange="durable").publish(b"3", routing_key="k", delivery_mode="transient")
    modes = [fetch(conn, "q").properties["delivery_mode"] for _ in range(3)]
    assert modes == [2, 1, 1]


def test_headers_properties_and_expiration(conn):
    headers = {"trace": "abc"}
    queue = Queue("q")
    Producer(conn).publish(
        {"x": 1},
        routing_key="q",
        declare=[queue],
        headers=headers,
        priority=5,
        expiration=1.5,
        message_id="m-1",
        correlation_id="c-1",
        reply_to=Queue("replies"),
    )
    message = fetch(conn, "q")
    assert message.headers == {"trace": "abc"}
    props = message.properties
    assert props["priority"] == 5
    assert props["expiration"] == "1500"
    assert (props["message_id"], props["correlation_id"]) == ("m-1", "c-1")
    assert props["reply_to"] == "replies"
    assert headers == {"trace": "abc"}  # the caller's dict is not modified


def test_compression_sets_kombus_header_and_is_undone_on_receive(conn):
    headers = {"k": "v"}
    Producer(conn).publish(
        {"big": "x" * 1000}, routing_key="q", declare=[Queue("q")], compression="zlib",
        headers=headers,
    )  # fmt: skip
    message = fetch(conn, "q")
    assert message.headers == {"k": "v", "compression": "application/x-gzip"}
    assert len(message.raw.body) < 1000
    assert message.payload == {"big": "x" * 1000}
    assert headers == {"k": "v"}


def test_explicit_content_type_sends_the_body_as_is(conn):
    Producer(conn).publish(
        "<a/>", routing_key="q", declare=[Queue("q")], content_type="application/xml"
    )
    message = fetch(conn, "q")
    assert (message.content_type, message.content_encoding) == ("application/xml", "utf-8")
    assert message.body == b"<a/>"


def test_producers_carry_on_after_a_channel_error(conn):
    from broker.errors import NotFound

    for confirm in (False, True):
        producer = Producer(conn, confirm_publish=confirm)
        with pytest.raises(NotFound):
            producer.publish(b"x", exchange="missing", routing_key="k")
        # The channel error closed the channel; the next publish gets a new one.
        producer.publish(b"y", routing_key="q", declare=[Queue("q")])
    assert inspect()[0]["q"].messages == 2


# -- retry -------------------------------------------------------------------------


def test_publish_with_retry_after_the_broker_restarted(conn):
    producer = Producer(conn)
    producer.publish(b"1", routing_key="q", declare=[Queue("q")])
    reset()  # the broker "restarts": the connection is dead, everything is gone
    producer.publish(b"2", routing_key="q", declare=[Queue("q")], retry=True)
    assert inspect()[0]["q"].messages == 1


def test_bad_retry_policy_key_is_named(conn):
    with pytest.raises(ConfigurationError, match="'max_retry'"):
        Producer(conn).publish(b"x", retry=True, retry_policy={"max_retry": 1})


def test_producer_from_a_connection_does_no_io_until_it_publishes():
    from tests.support.net import free_port

    conn = Connection(f"amqp://guest:guest@127.0.0.1:{free_port()}//", connect_timeout=0.2)
    producer = Producer(conn, exchange=Exchange("logs", "fanout"), confirm_publish=True)
    assert not conn.connected and producer.connection is conn
