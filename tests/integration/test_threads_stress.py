"""32 threads on one connection for a bounded time, then the counts (issue 14).

Twenty publishers (plain, per-message confirms, pipelined batches), four
consumers draining the same connection and eight workers acking from their
own threads, on the RabbitMQ on 127.0.0.1:5672, for a few seconds. Then:
every confirmed message was consumed, none twice without the redelivered
flag, no thread met an error, each consumer's callbacks ran on its own
thread, and no channel is left open.
"""

from __future__ import annotations

import pytest

from broker import Connection
from tests.support.threads import MixedLoad

pytestmark = pytest.mark.broker

#: Seconds of publishing (the whole test stays well under 30 s).
SECONDS = 6.0


def test_thirty_two_threads_of_mixed_work_on_one_connection(
    rabbitmq_url: str, unique_name: str
) -> None:
    with Connection(rabbitmq_url) as conn:
        conn.default_channel.queue_declare(queue=unique_name, auto_delete=False)
        load = MixedLoad(conn, unique_name, publishers=20, consumers=4, workers=8)
        load.run(SECONDS)
        assert load.hung == []
        assert dict(load.errors) == {}
        assert load.confirmed, "nothing was confirmed"
        assert load.confirmed <= set(load.deliveries), "a confirmed message was lost"
        assert set(load.deliveries) <= load.confirmed | load.unknown, "a phantom message"
        assert load.unknown <= set(load.deliveries), "a plain publish was lost"
        twice = {key: n for key, n in load.unflagged.items() if n > 1}
        assert twice == {}, "delivered twice without the redelivered flag"
        assert all(len(threads) == 1 for threads in load.callback_threads.values())
        conn.default_channel.queue_delete(queue=unique_name)
        driver = conn.transport_connection.driver  # type: ignore[union-attr]
        assert driver.channels_in_use == 1  # the default channel: none leaked
        print(f"\n{len(load.confirmed)} confirmed, {len(load.unknown)} plain, "
              f"{sum(load.deliveries.values())} delivered")  # fmt: skip
