"""Consuming: callbacks receive the decoded body and the message."""

from broker import Connection, Consumer, Exchange, Producer, Queue

logs = Exchange("logs", type="topic")
errors = Queue("errors", exchange=logs, routing_key="*.error")


received = []


def handle(body, message):
    print(message.delivery_info["routing_key"], body)
    received.append(body)
    message.ack()


with (
    Connection("memory://") as conn,
    Consumer(conn, [errors], callbacks=[handle], prefetch_count=10),
):
    producer = Producer(conn, exchange=logs)
    producer.publish({"msg": "disk full"}, routing_key="db.error")
    producer.publish({"msg": "timeout"}, routing_key="api.error")
    while len(received) < 2:
        conn.drain_events(timeout=1)  # callbacks run here, on this thread
