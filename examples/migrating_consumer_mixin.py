"""A kombu ConsumerMixin worker, switched to brokerpool by changing the imports."""

# from kombu import Connection, Exchange, Queue
# from kombu.mixins import ConsumerMixin
from broker import Connection, Exchange, Queue
from broker.mixins import ConsumerMixin

task_queue = Queue("video-jobs", Exchange("video-jobs"), routing_key="video-jobs")


class Worker(ConsumerMixin):
    def __init__(self, connection):  # type: ignore[no-untyped-def]
        self.connection = connection
        self.handled = []

    def get_consumers(self, Consumer, channel):  # type: ignore[no-untyped-def]
        return [Consumer(queues=[task_queue], callbacks=[self.on_task], prefetch_count=10)]

    def on_task(self, body, message):  # type: ignore[no-untyped-def]
        self.handled.append(body["n"])
        message.ack()
        if len(self.handled) == 3:
            self.should_stop = True  # run() cancels the consumers and returns


# In production: Connection("amqp://rabbit-a//;amqp://rabbit-b//", heartbeat=10)
with Connection("memory://") as conn:
    producer = conn.Producer(exchange=task_queue.exchange)
    for n in range(3):
        producer.publish({"n": n}, routing_key="video-jobs", declare=[task_queue])

    worker = Worker(conn)
    worker.run()  # reconnects (failing over) and revives the consumers after a failure

print("handled", worker.handled)  # handled [0, 1, 2]
