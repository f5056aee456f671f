"""Acks and priorities on Redis: what is not acked comes back, flagged redelivered."""

import uuid

import redis

from broker import Connection, Exchange, Producer, Queue

URL = "redis://127.0.0.1:6379/13"
KEY_PREFIX = f"bp-docs-{uuid.uuid4().hex[:8]}:"  # a fresh prefix per run (see redis_basic)
options = {"key_prefix": KEY_PREFIX, "visibility_timeout": 60}

jobs = Queue("jobs", Exchange("jobs"), routing_key="jobs")
urgent = Queue("urgent", Exchange("urgent"), routing_key="urgent", max_priority=9)

try:
    with Connection(URL, transport_options=options) as worker:
        Producer(worker).publish(
            "resize image 7", exchange=jobs.exchange, routing_key="jobs", declare=[jobs]
        )
        message = jobs(worker).get()  # taken and recorded as unacked in one step
        assert message is not None and not message.delivery_info["redelivered"]
        # The worker closes without acking: the message goes back to the head
        # of its queue at once. Had the worker died instead, it would come back
        # once its lease ran out (visibility_timeout after its last renewal).

    with Connection(URL, transport_options=options) as worker:
        message = jobs(worker).get()
        assert message is not None
        print(message.payload, message.delivery_info["redelivered"])  # resize image 7 True
        message.ack()

        # A queue declared with max_priority is a sorted set: highest first,
        # first in first out within one priority.
        producer = Producer(worker, exchange=urgent.exchange, routing_key="urgent")
        for body, priority in [("low", 1), ("high", 9), ("medium", 5), ("high too", 9)]:
            producer.publish(body, priority=priority, declare=[urgent])
        order = []
        while (message := urgent(worker).get(no_ack=True)) is not None:
            order.append(message.payload)
        print(order)  # ['high', 'high too', 'medium', 'low']
        assert order == ["high", "high too", "medium", "low"]
finally:
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(match=KEY_PREFIX + "*"):
        client.delete(key)
    client.close()
