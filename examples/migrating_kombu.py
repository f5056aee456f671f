"""A kombu program, switched to brokerpool by changing the import."""

# from kombu import Connection, Consumer, Exchange, Producer, Queue
from broker import Connection, Consumer, Exchange, Producer, Queue

media = Exchange("media", "direct", durable=True)
video = Queue("video", exchange=media, routing_key="video")
received = []


def process_media(body, message):  # type: ignore[no-untyped-def]
    received.append(body)
    message.ack()


with Connection("memory://") as conn:
    producer = Producer(conn)
    producer.publish(
        {"name": "/tmp/lolcat1.avi", "size": 1301013},
        exchange=media,
        routing_key="video",
        declare=[video],
    )
    with Consumer(conn, queues=[video], callbacks=[process_media]):
        conn.drain_events(timeout=1)

print(received)  # [{'name': '/tmp/lolcat1.avi', 'size': 1301013}]
