"""Sync and async code together: asyncio.run from sync code, threads for the sync API.

The asyncio API never blocks the event loop; the synchronous API blocks its
thread. So: from synchronous code, run a coroutine with ``asyncio.run`` (or
``asyncio.run_coroutine_threadsafe`` onto a loop running in another thread);
from a coroutine, call the synchronous API with ``asyncio.to_thread``. Both
sides share the in-process ``memory://`` broker.
"""

import asyncio

from broker import Connection as SyncConnection
from broker import Queue
from broker.aio import Connection

queue = Queue("bridge")


def publish_synchronously(count: int) -> None:
    """Plain blocking code, e.g. a library that only has the synchronous API."""
    with SyncConnection("memory://") as conn:
        producer = conn.Producer(routing_key="bridge")
        for n in range(count):
            producer.publish({"n": n}, declare=[queue])


async def consume(count: int) -> list[int]:
    async with Connection("memory://") as conn:
        consumer = conn.Consumer([queue])
        await consumer.consume()
        # The blocking publisher runs in a worker thread; the loop keeps consuming.
        await asyncio.to_thread(publish_synchronously, count)
        got = []
        for _ in range(count):
            message = await consumer.get(timeout=5)
            got.append(message.payload["n"])
            await message.ack()
        await consumer.close()
        return got


# From synchronous code (a script, a CLI, a test): one asyncio.run per entry point.
print(asyncio.run(consume(5)))
