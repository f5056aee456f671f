"""Retrying a publish across a lost connection (at-least-once)."""

from broker import Connection, Producer, Queue

with Connection("memory://") as conn:
    producer = Producer(conn, confirm_publish=True)
    jobs = Queue("jobs")
    producer.publish({"job": 1}, routing_key="jobs", declare=[jobs])

    conn.collect()  # simulate a dropped connection

    # Reconnects (failing over to alternates), declares `jobs` again, republishes.
    producer.publish(
        {"job": 2},
        routing_key="jobs",
        declare=[jobs],
        retry=True,
        retry_policy={"max_retries": 5, "interval_start": 0.1, "interval_max": 2},
    )
    print(jobs(conn).queue_declare(passive=True))
