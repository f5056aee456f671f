"""An asyncio Redis consumer that takes messages and never acks them (the kill test's victim).

Run by ``test_redis_nodes.py`` as a separate process, so that the test can
SIGKILL it while it holds unacked messages::

    python redis_consumer_child.py URL KEY_PREFIX QUEUE COUNT VISIBILITY_TIMEOUT

The asyncio sibling of ``tests/reliability/redis_consumer_child.py``, on
:mod:`broker.aio`'s public API only: it consumes ``QUEUE`` (durable, not
auto-deleted) with a prefetch of 200 and without acking, and once it holds
``COUNT`` messages prints ``holding COUNT redelivered=N pid=PID``. Then it
keeps its connection open (the lease renewed on the event loop) until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys

from broker import Queue
from broker.aio import Connection


async def main(argv: list[str]) -> int:
    url, key_prefix, queue, count, visibility_timeout = argv
    options = {"visibility_timeout": float(visibility_timeout), "key_prefix": key_prefix}
    async with Connection(url, transport_options=options) as conn:
        consumer = conn.Consumer([Queue(queue, durable=True, auto_delete=False)],
                                 prefetch_count=200)  # fmt: skip
        await consumer.consume()
        held = [await consumer.get(timeout=30) for _ in range(int(count))]  # never acked
        redelivered = sum(bool(m.delivery_info["redelivered"]) for m in held)
        print(f"holding {len(held)} redelivered={redelivered} pid={os.getpid()}", flush=True)
        await asyncio.Event().wait()  # a live consumer, busy with what it holds, until killed
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
