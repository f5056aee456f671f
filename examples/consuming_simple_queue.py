"""SimpleQueue and SimpleBuffer: put and get, like queue.Queue."""

from broker import Connection

with Connection("memory://") as conn:
    with conn.SimpleQueue("inbox") as inbox:
        inbox.put({"hello": "world"})
        message = inbox.get(timeout=1)  # waits on the connection, no polling
        print(message.payload)
        message.ack()
        try:
            inbox.get(timeout=0.1)
        except inbox.Empty:  # also a queue.Empty
            print("inbox is empty")

    # Transient: not durable, deleted when unused, no acks needed.
    with conn.SimpleBuffer("scratch") as scratch:
        scratch.put("temporary")
        print(scratch.get(timeout=1).payload)
