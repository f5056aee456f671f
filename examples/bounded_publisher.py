"""A publisher that must not block forever: a deadline on retries and on the confirm."""

from broker import ConfirmTimeout, Connection, OperationalError, Producer, Queue

events = Queue("events", durable=True)
# In production: "amqp://rabbit-a//;amqp://rabbit-b//" with confirm_publish on.
conn = Connection("memory://", connect_timeout=2)
producer = Producer(conn, confirm_publish=True)

try:
    producer.publish(
        {"event": "signed-up", "user": 42},
        routing_key="events",
        declare=[events],
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.5, "timeout": 10},
        confirm_timeout=5,
    )
except ConfirmTimeout:
    # The broker may or may not have the message: publish again if
    # duplicates are acceptable, else record it as unknown.
    print("not confirmed in time")
except OperationalError as exc:
    # Every broker stayed unreachable for the whole budget.
    print("gave up:", exc)
else:
    print("confirmed")
conn.close()
