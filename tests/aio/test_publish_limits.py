"""The asyncio transports refuse what RabbitMQ refuses, before anything is written.

The same limits as the synchronous transports (``transports/_shared/validation.py``):
a bad header or property is a ``ConfigurationError`` naming the key and the type,
and the connection, the channel and the producer stay usable.
"""

from __future__ import annotations

import uuid

import pytest

from broker import Queue
from broker.aio import Connection
from broker.errors import ConfigurationError

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"headers": {"id": uuid.uuid4()}}, "'id'"),
        ({"priority": 300}, "priority"),
        ({"delivery_mode": 7}, "delivery_mode"),
        ({"routing_key": "k" * 256}, "routing"),
    ],
    ids=["uuid-header", "priority", "delivery-mode", "long-routing-key"],
)
async def test_a_publish_outside_the_limits_is_refused_and_the_producer_stays_usable(
    conn: Connection, unique_name: str, made: list[str], options: dict[str, object], named: str
) -> None:
    made.append(unique_name)
    queue = Queue(unique_name, durable=False)
    producer = conn.Producer()
    with pytest.raises(ConfigurationError, match=named):
        await producer.publish(b"bad", **{"routing_key": unique_name, **options}, declare=[queue])
    await producer.publish(b"good", routing_key=unique_name, declare=[queue])
    sq = conn.SimpleQueue(queue)
    message = await sq.get(timeout=5)
    assert message.body == b"good" and conn.connected
    await message.ack()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"corelation_id": "x"}, r"unknown keyword argument\(s\) 'corelation_id' \(did you mean"),
        ({"expiration": float("nan")}, "expiration is a TTL in seconds"),
        ({"expiration": "5000"}, "got the str '5000'"),
        ({"confirm_timeout": "soon"}, "confirm_timeout must be a number of seconds"),
        ({"retry": True, "retry_policy": {"max_retry": 1}}, r"unknown retry_policy key\(s\)"),
    ],
    ids=["misspelt-property", "nan-ttl", "str-ttl", "str-confirm-timeout", "retry-policy-key"],
)
async def test_a_publish_argument_mistake_is_refused_as_on_the_synchronous_side(
    conn: Connection, unique_name: str, made: list[str], options: dict[str, object], said: str
) -> None:
    # The two producers share their argument checks (broker/messaging/publishing.py).
    made.append(unique_name)
    queue = Queue(unique_name, durable=False)
    producer = conn.Producer(routing_key=unique_name)
    with pytest.raises(ConfigurationError, match=said):
        await producer.publish(b"bad", declare=[queue], **options)
    await producer.publish(b"good", declare=[queue])
    message = await conn.SimpleQueue(queue).get(timeout=5)
    assert message.body == b"good"
    await message.ack()
