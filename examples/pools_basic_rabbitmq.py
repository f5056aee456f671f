"""A bounded pool of connections to RabbitMQ, each lent to one thread at a time."""

from broker import Connection

conn = Connection("amqp://guest:guest@127.0.0.1:5672//")
pool = conn.Pool(limit=8)  # pools.ConnectionPool

with pool.acquire(block=True, timeout=2) as c:
    channel = c.default_channel
    channel.queue_declare(queue="", exclusive=True)
    channel.basic_publish(channel.prepare_message(b"hi"), routing_key="jobs")
pool.close()
