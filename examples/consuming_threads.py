"""Processing in worker threads, acking on the connection's own thread."""

import contextlib
from concurrent.futures import ThreadPoolExecutor

from broker import Connection, Consumer, Producer, Queue

work = Queue("work")

with Connection("memory://") as conn, ThreadPoolExecutor(max_workers=4) as pool:
    acked = []

    def process(message):
        result = message.payload["n"] * 2  # the slow part runs in a worker
        # Channels are not thread-safe: hand the ack to the connection's thread.
        conn.add_callback_threadsafe(lambda: (message.ack(), acked.append(result)))

    def on_message(message):
        pool.submit(process, message)

    producer = Producer(conn)
    for n in range(5):
        producer.publish({"n": n}, routing_key="work", declare=[work])

    with Consumer(conn, [work], on_message=on_message, prefetch_count=5):
        while len(acked) < 5:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.1)  # also runs the queued acks
    print(sorted(acked))
