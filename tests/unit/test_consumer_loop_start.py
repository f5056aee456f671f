"""ConsumerLoop starts a consumer whose first basic_consume the link broke under.

Seen in the cluster tier: a quorum queue consumer starting on a node that is
shutting down (or just back) gets its connection closed with 541 under its
first basic_consume, before any recovery record holds it.
"""

from __future__ import annotations

from typing import Any

from broker import Connection, Consumer, ConsumerLoop, Producer, Queue
from broker.errors import RecoverableConnectionError


def test_a_consumer_whose_start_broke_the_link_is_started_after_the_reconnect() -> None:
    conn = Connection("memory://")
    starts: list[int] = []

    class BrokenOnce(Consumer):
        def consume(self, no_ack: bool | None = None) -> None:
            starts.append(1)
            if len(starts) == 1:
                conn.collect()  # the link breaks under the first basic_consume
                raise RecoverableConnectionError("closed the connection: INTERNAL_ERROR (541)")
            super().consume(no_ack)

    got: list[bytes] = []

    def handle(message: Any) -> None:
        got.append(message.body)
        message.ack()
        loop.stop()

    loop = ConsumerLoop(
        conn,
        lambda channel: [BrokenOnce(channel, queues=[Queue("jobs")], on_message=handle)],
        drain_timeout=0.05,
    )
    with Connection("memory://") as other:
        Producer(other).publish(b"job", routing_key="jobs", declare=[Queue("jobs")])
    loop.run(handle_signals=False)
    conn.close()
    assert got == [b"job"]
    assert loop.reconnects == 1 and len(starts) == 2
