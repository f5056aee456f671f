"""Consumer callbacks may be plain functions or coroutine functions; hooks too."""

import asyncio

from broker import Queue
from broker.aio import Connection, Message


async def main() -> None:
    done = asyncio.Event()
    seen: list[object] = []

    def log(payload: object, message: Message) -> None:  # plain: runs first
        seen.append(payload)

    async def handle(payload: object, message: Message) -> None:  # async: awaited in turn
        await message.ack()
        if len(seen) == 3:
            done.set()

    async def on_connect(conn: Connection) -> None:
        print("connected to", conn.as_uri())

    queue = Queue("events")
    conn = Connection("memory://", on_connect=on_connect)
    async with conn, conn.Consumer([queue], callbacks=[log, handle]):
        producer = conn.Producer(routing_key="events")
        for n in range(3):
            await producer.publish({"event": n}, declare=[queue])
        await asyncio.wait_for(done.wait(), timeout=5)
    print(seen)


asyncio.run(main())
