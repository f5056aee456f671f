"""Failover and confirms on RabbitMQ with the asyncio API.

The first URL points at a port where no broker listens: the connection moves
on to the second at once (no sleep within a round), as the synchronous API does.
"""

import asyncio

from broker import Queue
from broker.aio import Connection

URLS = "amqp://guest:guest@127.0.0.1:1//;amqp://guest:guest@127.0.0.1:5672//"


async def main() -> None:
    queue = Queue("aio-failover-example", durable=False, auto_delete=True)
    async with Connection(URLS, heartbeat=10) as conn:
        producer = conn.Producer(routing_key=queue.name, confirm_publish=True)
        # Returns once RabbitMQ confirmed it; retry=True would also survive a lost link.
        await producer.publish({"hello": "world"}, declare=[queue], retry=True)
        print("connected to", conn.host)
        sq = conn.SimpleQueue(queue)
        message = await sq.get(timeout=5)
        print("got", message.payload)
        await message.ack()
        await sq.close()


asyncio.run(main())
