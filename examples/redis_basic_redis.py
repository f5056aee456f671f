"""The Redis transport: declare, publish, consume and ack on db 13 of a local Redis."""

import uuid

import redis

from broker import Connection, Consumer, Exchange, Producer, Queue

URL = "redis://127.0.0.1:6379/13"  # the path is the database number
# Every key brokerpool writes starts with the key prefix. This sample takes a
# fresh one per run so that runs never share queues; an application uses a
# fixed one, such as "billing:".
KEY_PREFIX = f"bp-docs-{uuid.uuid4().hex[:8]}:"

orders = Exchange("orders", type="topic")
paid = Queue("paid-orders", exchange=orders, routing_key="order.paid")
received = []


def handle(body, message):
    received.append(body)
    message.ack()  # deletes the message's unacked record in Redis


try:
    with Connection(URL, transport_options={"key_prefix": KEY_PREFIX}) as conn:
        producer = Producer(conn, exchange=orders)
        # Returns once Redis has run the publish script: the message is in the queue.
        producer.publish({"order": 17, "total": "9.90"}, routing_key="order.paid", declare=[paid])

        with Consumer(conn, [paid], callbacks=[handle], prefetch_count=10):
            while not received:
                conn.drain_events(timeout=5)  # waits on a pub/sub notification, no polling
        print(received)  # [{'order': 17, 'total': '9.90'}]

        with conn.SimpleQueue("inbox") as inbox:
            inbox.put("hello")
            message = inbox.get(timeout=5)
            print(message.payload, message.delivery_info["redelivered"])  # hello False
            message.ack()
finally:
    # Clean up: brokerpool keeps all its state under the key prefix.
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(match=KEY_PREFIX + "*"):
        client.delete(key)
    client.close()
