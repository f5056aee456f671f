"""What a consumer agrees to decode: pickle only when asked for; bytes always arrive."""

from broker import Connection, Consumer, ContentDisallowed, Producer, Queue

with Connection("memory://") as conn:
    untrusted = Queue("untrusted")
    producer = Producer(conn)
    producer.publish({"a", "set"}, "untrusted", serializer="pickle", declare=[untrusted])
    # No serializer decodes these: they arrive as the bytes sent, whatever accept says.
    producer.publish(b"\x89PNG\r\n\x1a\n", "untrusted", content_type="image/png")
    producer.publish("café", "untrusted", content_type="text/plain", content_encoding="latin-1")

    message = untrusted(conn).get()  # default accept: json, text, raw bytes
    try:
        print(message.payload)
    except ContentDisallowed as exc:
        print("refused:", exc)
    message.requeue()  # back to the queue, redelivered first

    received = []

    def handle(body, message):
        received.append(body)
        message.ack()

    with Consumer(conn, [untrusted], accept=["json", "text", "pickle"], callbacks=[handle]):
        conn.drain_events(timeout=1)
    print(received)  # [{'a', 'set'}, b'\x89PNG\r\n\x1a\n', 'café']
