"""Publishing: an exchange, a queue bound to it, and a producer."""

import uuid

from broker import ConfigurationError, Connection, Exchange, Producer, Queue

media = Exchange("media", type="direct")  # durable: messages are persistent by default
video = Queue("video", exchange=media, routing_key="video")
# An exchange bound to an exchange (RabbitMQ's extension; memory:// has it too).
archive = Exchange("archive", type="fanout")
archived = Queue("archived", exchange=archive)

with Connection("memory://") as conn:
    producer = Producer(conn, exchange=media, routing_key="video")  # no I/O yet
    media(conn).declare()  # the first publish would declare it; the binding needs it now
    archived(conn).declare()  # declares the archive exchange and binds the queue
    archive(conn).bind_to(media, routing_key="video")  # gets what media routes by "video"
    producer.publish(
        {"name": "intro.mp4", "size": 1024},  # JSON by default
        declare=[video],  # declared once per connection, then cached
        headers={"trace-id": "abc123"},
        message_id="video-1",
    )
    producer.publish(b"\x00\x01raw bytes", content_type="application/octet-stream")
    producer.publish("a text message", compression="zlib")
    try:  # a UUID is no AMQP header value: refused before anything is sent
        producer.publish({"name": "x"}, headers={"id": uuid.uuid4()})
    except ConfigurationError as exc:
        print("refused:", exc)  # the producer and the connection stay usable

    message = video(conn).get()
    assert message is not None
    print(message.payload, message.headers, message.properties["delivery_mode"])
    message.ack()
    copy = archived(conn).get(no_ack=True)  # the archive got a copy of each message
    assert copy is not None and copy.payload == message.payload
