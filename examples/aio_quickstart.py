"""The asyncio API in one page: connect, publish, confirm, consume, SimpleQueue, pools."""

import asyncio

from broker import Exchange, Queue
from broker.aio import Connection


async def main() -> None:
    exchange = Exchange("tasks", type="direct")
    queue = Queue("tasks", exchange, routing_key="task")

    # No I/O yet: the connection opens on first use (or here, explicitly).
    async with Connection("memory://", heartbeat=10, failover_strategy="shuffle") as conn:
        await conn.ensure_connection(max_retries=3)

        producer = conn.Producer()
        # retry=True reconnects (failing over) and publishes again on a lost link.
        await producer.publish({"n": 1}, exchange=exchange, routing_key="task", declare=[queue],
                               retry=True)  # fmt: skip

        # Pipelined confirms: no wait per message, one at the end of the block.
        async with producer.confirms(timeout=30) as batch:
            for i in range(1000):
                await producer.publish(i, exchange=exchange, routing_key="task")
        print("confirmed:", batch.confirmed)

        # Consume with an async iterator; prefetch bounds what is in flight.
        received = 0
        async with conn.Consumer([queue], accept=["json"], prefetch_count=100) as consumer:
            async for message in consumer:
                await message.ack()
                received += 1
                if received == 1001:
                    break
        print("received:", received)

        sq = conn.SimpleQueue("jobs")
        await sq.put({"x": 1})
        message = await sq.get(timeout=1)
        await message.ack()
        print("job:", message.payload)
        await sq.close()

        # Pools: connections like this one, and channels of this one.
        pool = conn.Pool(limit=10)
        async with pool.acquire(timeout=1) as pooled:
            print("pooled:", pooled.connected)
        await pool.close()


asyncio.run(main())
