"""Publisher confirms, one message at a time."""

from broker import Connection, MessageUnroutable, Producer, Queue

with Connection("memory://") as conn:
    # Or: Connection(url, transport_options={"confirm_publish": True})
    producer = Producer(conn, confirm_publish=True, confirm_timeout=10)
    orders = Queue("orders")

    # Returns only once the broker has taken responsibility for the message.
    producer.publish({"order": 1}, routing_key="orders", declare=[orders])

    # mandatory=True: a message no queue takes is an error, not a silent drop.
    try:
        producer.publish({"order": 2}, routing_key="no-such-queue", mandatory=True)
    except MessageUnroutable as exc:
        print("not delivered:", exc)
