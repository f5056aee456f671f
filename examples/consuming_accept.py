"""What a consumer agrees to decode: pickle only when asked for."""

from broker import Connection, Consumer, ContentDisallowed, Producer, Queue

with Connection("memory://") as conn:
    untrusted = Queue("untrusted")
    producer = Producer(conn)
    producer.publish({"a", "set"}, "untrusted", serializer="pickle", declare=[untrusted])

    message = untrusted(conn).get()  # default accept: json, text, raw bytes
    try:
        print(message.payload)
    except ContentDisallowed as exc:
        print("refused:", exc)
    message.requeue()

    received = []

    def handle(body, message):
        received.append(body)
        message.ack()

    with Consumer(conn, [untrusted], accept=["json", "pickle"], callbacks=[handle]):
        conn.drain_events(timeout=1)
    print(received)
