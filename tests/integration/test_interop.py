"""Wire compatibility with kombu and pika on the real RabbitMQ.

brokerpool and kombu must read each other's messages (content types,
encodings, headers, the ``compression`` header); pika, which knows nothing of
either, must see plain AMQP properties and bodies.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Queue
from broker.messaging.producer import Producer
from tests.support.services import require_module

# Both come with the test extra: skipped without them, but failing under CI=true.
kombu = require_module("kombu")
pika = require_module("pika")

pytestmark = pytest.mark.broker


@pytest.fixture
def queue_name(rabbitmq_url: str, unique_name: str) -> Iterator[str]:
    """A transient queue declared by brokerpool, deleted afterwards."""
    with Connection(rabbitmq_url) as conn:
        Queue(unique_name, durable=False)(conn).declare()
    yield unique_name
    with Connection(rabbitmq_url) as conn:
        conn.channel().queue_delete(unique_name)


def publish_with_brokerpool(url: str, queue: str, body: Any, **kwargs: Any) -> None:
    with Connection(url) as conn:
        Producer(conn, confirm_publish=True).publish(body, routing_key=queue, **kwargs)


def get_with_kombu(url: str, queue: str, accept: list[str] | None = None) -> Any:
    with kombu.Connection(url) as conn:
        kqueue = kombu.Queue(queue, no_declare=True)(conn.default_channel)
        message = kqueue.get(no_ack=True, accept=accept or ["json", "text/plain"])
        assert message is not None, "kombu found no message"
        return message


CASES = [
    pytest.param({"hello": "world", "n": [1, 2]}, {"trace": "t-1"}, None, id="json+headers"),
    pytest.param(b"\x00\x01binary", None, None, id="bytes"),
    pytest.param("text é", None, None, id="str"),
    pytest.param({"big": "x" * 500}, {"trace": "t-2"}, "zlib", id="json+zlib"),
]


@pytest.mark.parametrize(("body", "headers", "compression"), CASES)
def test_kombu_decodes_what_brokerpool_publishes(
    rabbitmq_url, queue_name, body, headers, compression
):
    publish_with_brokerpool(
        rabbitmq_url, queue_name, body, headers=headers, compression=compression
    )
    message = get_with_kombu(rabbitmq_url, queue_name)
    assert message.payload == body
    for key, value in (headers or {}).items():
        assert message.headers[key] == value
    assert message.properties["delivery_mode"] == 2


@pytest.mark.parametrize(("body", "headers", "compression"), CASES)
def test_pika_sees_plain_amqp_properties(rabbitmq_url, queue_name, body, headers, compression):
    publish_with_brokerpool(
        rabbitmq_url, queue_name, body, headers=headers, compression=compression
    )
    # pika reads the path '/' as the empty vhost name: spell '/' as %2F.
    url = rabbitmq_url[:-2] + "/%2F" if rabbitmq_url.endswith("//") else rabbitmq_url
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method, properties, raw = connection.channel().basic_get(queue_name, auto_ack=True)
    finally:
        connection.close()
    assert method is not None
    expected_type = {bytes: "application/data", str: "text/plain"}.get(
        type(body), "application/json"
    )
    assert properties.content_type == expected_type
    assert properties.delivery_mode == 2
    sent_headers = dict(properties.headers or {})
    if compression:
        assert sent_headers.pop("compression") == "application/x-gzip"
        raw = zlib.decompress(raw)
    assert sent_headers == (headers or {})
    if isinstance(body, bytes):
        assert raw == body
    elif isinstance(body, str):
        assert properties.content_encoding == "utf-8"
        assert raw.decode("utf-8") == body
    else:
        import json

        assert json.loads(raw) == body


@pytest.mark.parametrize(
    ("body", "headers", "compression"),
    [
        pytest.param({"from": "kombu", "list": [1, 2]}, {"trace": "k-1"}, None, id="json+headers"),
        pytest.param({"big": "y" * 500}, {"trace": "k-2"}, "zlib", id="json+zlib"),
        pytest.param(b"raw bytes", None, None, id="bytes"),
    ],
)
def test_brokerpool_decodes_what_kombu_publishes(
    rabbitmq_url, queue_name, body, headers, compression
):
    with kombu.Connection(rabbitmq_url) as kconn:
        kombu.Producer(kconn.default_channel).publish(
            body, routing_key=queue_name, headers=headers, compression=compression
        )
    with Connection(rabbitmq_url) as conn:
        message = Queue(queue_name)(conn).get(no_ack=True)
    assert message is not None
    assert message.payload == body
    for key, value in (headers or {}).items():
        assert message.headers[key] == value
