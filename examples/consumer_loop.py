"""A long-running consumer that survives broker failures (ConsumerLoop)."""

import threading

from broker import Connection, Consumer, ConsumerLoop, Exchange, Producer, Queue

tasks = Queue("tasks", Exchange("tasks"), routing_key="tasks")
done = threading.Event()
handled: list[int] = []


def handle(body, message):  # type: ignore[no-untyped-def]
    handled.append(body["n"])
    message.ack()
    if len(handled) == 3:
        done.set()


# In production: Connection("amqp://rabbit-a//;amqp://rabbit-b//", heartbeat=10)
conn = Connection("memory://")
loop = ConsumerLoop(
    conn,
    lambda channel: [Consumer(channel, queues=[tasks], callbacks=[handle], prefetch_count=10)],
    on_revive=lambda c: print("reconnected to", c.as_uri()),
)
# run() blocks until stop() (or SIGINT/SIGTERM when run on the main thread).
worker = threading.Thread(target=loop.run, kwargs={"handle_signals": False})
worker.start()

with Connection("memory://") as publisher:
    producer = Producer(publisher, exchange=tasks.exchange)
    for n in range(3):
        producer.publish({"n": n}, routing_key="tasks", declare=[tasks])

done.wait(5)
loop.stop()
worker.join()
print("handled", handled)  # handled [0, 1, 2]
conn.close()
