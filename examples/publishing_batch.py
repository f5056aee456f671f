"""Pipelined confirms: many messages in flight, one wait at the end."""

from broker import ConfirmTimeout, Connection, MessageNacked, Producer, Queue

with Connection("memory://") as conn:
    producer = Producer(conn)
    producer.maybe_declare(Queue("events"))
    try:
        with producer.confirms(timeout=30) as batch:
            for n in range(1000):
                producer.publish({"n": n}, routing_key="events", message_id=f"event-{n}")
    except (MessageNacked, ConfirmTimeout):
        # Nothing is lost silently: republish what the broker did not confirm.
        for record in batch.nacked + batch.unconfirmed:
            print("republish", record.message_id)
        raise
    print(batch)  # <ConfirmBatch published=1000 confirmed=1000 ...>
