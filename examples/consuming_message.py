"""The message state machine: ack, reject, requeue -- exactly once."""

from broker import Connection, MessageStateError, Producer, Queue

with Connection("memory://") as conn:
    tasks = Queue("tasks")
    producer = Producer(conn)
    for n in range(3):
        producer.publish({"n": n}, routing_key="tasks", declare=[tasks])

    queue = tasks(conn)
    first, second, third = queue.get(), queue.get(), queue.get()
    first.ack()
    second.requeue()  # back to the queue, redelivered later
    third.reject()  # dropped (or dead-lettered, if the queue says so)
    try:
        first.ack()
    except MessageStateError as exc:
        print(exc)

    again = queue.get()
    print(again.payload, again.delivery_info["redelivered"], repr(again))
    again.ack()
