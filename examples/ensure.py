"""ensure() and autoretry(): retry an operation across reconnects."""

from broker import Connection, Exponential, RetryPolicy

conn = Connection("memory://")


def declare_and_publish(body: bytes, channel) -> str:  # type: ignore[no-untyped-def]
    # The flags Queue("tasks") declares it with (durable, not auto-delete): redeclaring
    # an existing queue with other flags fails with 406 PRECONDITION_FAILED.
    channel.queue_declare(queue="tasks", durable=True, auto_delete=False)
    channel.basic_publish(channel.prepare_message(body), exchange="", routing_key="tasks")
    return "published"


# autoretry passes a channel and returns (result, channel); after a reconnect
# the channel is a fresh one on the new connection.
publish = conn.autoretry(declare_and_publish, max_retries=3, interval_start=0.5)
result, channel = publish(b"job-1")
print(result, "on channel", channel.channel_id)

# A RetryPolicy value may replace the loose keywords.
policy = RetryPolicy(max_retries=5, backoff=Exponential(base=0.2, maximum=5), timeout=30)
publish = conn.autoretry(declare_and_publish, policy=policy)
publish(b"job-2")
conn.close()
