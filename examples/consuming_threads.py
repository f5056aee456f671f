"""Processing in worker threads, acking from the worker that did the work."""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from broker import Connection, Consumer, Producer, Queue

work = Queue("work")

with Connection("memory://") as conn, ThreadPoolExecutor(max_workers=4) as pool:
    acked = []
    lock = threading.Lock()

    def process(message):
        result = message.payload["n"] * 2  # the slow part runs in a worker
        message.ack()  # from any thread: the connection keeps the frame whole
        with lock:
            acked.append(result)

    def on_message(message):
        pool.submit(process, message)

    producer = Producer(conn)
    for n in range(5):
        producer.publish({"n": n}, routing_key="work", declare=[work])

    with Consumer(conn, [work], on_message=on_message, prefetch_count=5):
        while len(acked) < 5:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.1)
    print(sorted(acked))
