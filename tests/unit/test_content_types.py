"""Which content a consumer decodes, and how, on memory://.

``accept`` restricts only what would be decoded: content no registered
serializer decodes (``application/octet-stream``, ``image/png``, protobuf...)
is delivered as the raw bytes, pickle stays refused unless accepted, text is
decoded in its declared ``content_encoding``, and an empty body keeps its type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection, Consumer, Producer, Queue
from broker.errors import ContentDisallowed, SerializationError
from broker.messaging.message import Message
from broker.messaging.serialization import loads, prepare_accept
from tests.support.messaging import fetch

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff"


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


@pytest.fixture
def queue(conn: Connection) -> Queue:
    bound = Queue("content")(conn)
    bound.declare()
    return bound


def consume_all(conn: Connection, queue: Queue, **options: Any) -> list[Any]:
    """The payloads a consumer's callback gets for everything in ``queue``."""
    received: list[Any] = []

    def handle(body: Any, message: Message) -> None:
        received.append(body)
        message.ack()

    with Consumer(conn, [queue], callbacks=[handle], **options):
        conn.drain_events(timeout=1)
    return received


# -- binary and foreign content -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/octet-stream",
        "image/png",
        "application/x-protobuf",
        "application/vnd.google.protobuf",
        "audio/ogg",
    ],
)
def test_a_default_consumer_delivers_binary_content_as_bytes(
    conn: Connection, queue: Queue, content_type: str
) -> None:
    Producer(conn, routing_key="content").publish(BINARY, content_type=content_type)
    assert consume_all(conn, queue) == [BINARY]


def test_accept_does_not_refuse_content_nothing_would_decode(
    conn: Connection, queue: Queue
) -> None:
    producer = Producer(conn, routing_key="content")
    producer.publish(BINARY, content_type="image/png")
    producer.publish({"a": 1})
    assert consume_all(conn, queue, accept=["json"]) == [BINARY, {"a": 1}]


def test_the_publishing_docs_octet_stream_message_reaches_a_default_consumer(
    conn: Connection, queue: Queue
) -> None:
    Producer(conn, routing_key="content").publish(
        b"\x00\x01raw bytes", content_type="application/octet-stream"
    )
    message = fetch(conn, "content")
    assert message.payload == b"\x00\x01raw bytes"
    assert message.content_type == "application/octet-stream"


def test_pickle_stays_refused_unless_accepted(conn: Connection, queue: Queue) -> None:
    Producer(conn, routing_key="content").publish({1, 2}, serializer="pickle")
    message = fetch(conn, "content")
    with pytest.raises(ContentDisallowed, match=r"pickle \(application/x-python-serialize\)"):
        message.decode()
    message.requeue()
    assert consume_all(conn, queue, accept=["pickle"]) == [{1, 2}]


def test_a_registered_type_outside_accept_is_still_refused() -> None:
    with pytest.raises(ContentDisallowed, match=r"json \(application/json\)"):
        loads(b"{}", "application/json", "utf-8", prepare_accept(["text"]))


def test_foreign_text_is_bytes_unless_accepted_then_decoded_in_its_charset() -> None:
    data = "<p>é</p>".encode("latin-1")
    assert loads(data, "text/html", "latin-1") == data
    accept = prepare_accept(["text/html"])
    assert loads(data, "text/html", "latin-1", accept) == "<p>é</p>"


def test_accepted_foreign_content_with_a_binary_encoding_stays_bytes() -> None:
    accept = prepare_accept(["application/x-thing"])
    assert loads(b"\xff\x00", "application/x-thing", "binary", accept) == b"\xff\x00"


# -- text in its declared encoding ----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["latin-1", "iso-8859-1", "utf-16", "cp1252", "UTF-8"])
def test_text_plain_is_decoded_in_its_declared_encoding(
    conn: Connection, queue: Queue, encoding: str
) -> None:
    Producer(conn, routing_key="content").publish(
        "déjà vu", content_type="text/plain", content_encoding=encoding
    )
    message = fetch(conn, "content")
    assert message.body == "déjà vu".encode(encoding)
    assert message.payload == "déjà vu"


def test_text_that_does_not_decode_in_its_encoding_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot decode text/plain body"):
        loads(b"\xff\xfe\xfa", "text/plain", "utf-8")
    with pytest.raises(SerializationError, match="cannot decode text/plain body"):
        loads(b"x", "text/plain", "no-such-charset")


# -- empty bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"), [(b"", b""), ("", "")], ids=["empty-bytes", "empty-str"]
)
def test_an_empty_body_keeps_its_type(
    conn: Connection, queue: Queue, body: bytes | str, expected: bytes | str
) -> None:
    Producer(conn, routing_key="content").publish(body)
    (payload,) = consume_all(conn, queue)
    assert payload == expected and type(payload) is type(expected)


@pytest.mark.parametrize(
    ("content_type", "encoding", "expected"),
    [
        ("text/plain", "utf-8", ""),
        ("text/plain", "latin-1", ""),
        ("application/data", "binary", b""),
        ("application/json", "utf-8", b""),  # kombu's rule: nothing to decode
        ("image/png", "binary", b""),
        (None, None, b""),
    ],
)
def test_loads_of_an_empty_body(
    content_type: str | None, encoding: str | None, expected: bytes | str
) -> None:
    result = loads(b"", content_type, encoding)
    assert result == expected and type(result) is type(expected)
