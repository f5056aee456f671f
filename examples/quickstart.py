"""Quickstart: publish and consume one message on the embedded memory:// broker."""

from broker import Connection

with Connection("memory://") as conn:
    queue = conn.SimpleQueue("hello")
    queue.put({"greeting": "hello, world"})
    message = queue.get(timeout=1)
    print(message.payload)  # {'greeting': 'hello, world'}
    message.ack()
    queue.close()
