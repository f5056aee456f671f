"""redis:// on asyncio: an asyncio consumer and a synchronous producer on one Redis.

Both APIs run the same broker script on the same keys, so they see each
other's queues and messages; the asyncio consumer waits on a pub/sub
notification (no polling) and its lease is renewed on the event loop.
"""

import asyncio
import uuid

import redis

from broker import Connection as SyncConnection
from broker import Exchange, Queue
from broker.aio import Connection

URL = "redis://127.0.0.1:6379/13"  # the path is the database number
# Every key brokerpool writes starts with the key prefix (fresh per run here,
# fixed in an application), and both APIs must use the same one.
KEY_PREFIX = f"bp-docs-{uuid.uuid4().hex[:8]}:"
OPTIONS = {"key_prefix": KEY_PREFIX, "visibility_timeout": 60}

orders = Exchange("orders", type="topic")
paid = Queue("paid-orders", exchange=orders, routing_key="order.paid")


def publish_synchronously(count: int) -> None:
    """Plain blocking code, e.g. a worker that only has the synchronous API."""
    with SyncConnection(URL, transport_options=OPTIONS) as conn:
        producer = conn.Producer(exchange=orders)
        for n in range(count):
            producer.publish({"order": n}, routing_key="order.paid", declare=[paid])


async def main() -> list[int]:
    async with Connection(URL, transport_options=OPTIONS) as conn:
        async with conn.Consumer([paid], prefetch_count=10) as consumer:
            await asyncio.to_thread(publish_synchronously, 3)
            got = []
            async for message in consumer:
                got.append(message.payload["order"])
                await message.ack()  # deletes the message's unacked record in Redis
                if len(got) == 3:
                    break
        return got


try:
    print(asyncio.run(main()))  # [0, 1, 2]
finally:
    # Clean up: brokerpool keeps all its state under the key prefix.
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(match=KEY_PREFIX + "*"):
        client.delete(key)
    client.close()
