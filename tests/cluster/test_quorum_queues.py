"""Quorum and stream queues through brokerpool, on the three-node RabbitMQ cluster.

Declared with their type and options, a stream read from its first offset,
counted redeliveries on the message,
declared again correctly when a connection recovers on another node, and a
nacked publish retried under ``retry=True``: a quorum queue with
``x-overflow: reject-publish`` nacks on purpose once it is over its
``max_length`` (it takes one message past the limit, then refuses), which
makes the nack path deterministic where an election's nack is not (it did
not happen in 8 tries with the harness).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from broker import Connection, Consumer, Producer, Queue
from broker.errors import MessageNacked, OperationalError, RecoverableConnectionError
from tests.support.rabbitcluster import RabbitCluster
from tests.support.wait import drain_until


def queue_types(cluster: RabbitCluster) -> dict[str, str]:
    """Every queue's type, as ``rabbitmqctl list_queues`` reports it."""
    out = cluster.ctl(cluster.seed, "list_queues", "name", "type", "--quiet", "--no-table-headers")
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def test_quorum_and_stream_queues_are_declared_with_their_type(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    quorum = Queue(f"{unique_name}-q", queue_type="quorum", delivery_limit=4,
                   dead_letter_strategy="at-most-once")  # fmt: skip
    stream = Queue(f"{unique_name}-s", queue_type="stream", max_length_bytes=10_000_000)
    with Connection(rabbit_cluster.urls) as conn:
        quorum(conn).declare()
        stream(conn).declare()
    types = queue_types(rabbit_cluster)
    assert (types[quorum.name], types[stream.name]) == ("quorum", "stream")
    # The same declarations through another member are no 406: they are equivalent.
    with Connection(rabbit_cluster.urls[2]) as conn:
        quorum(conn).declare()
        stream(conn).declare()
        quorum(conn).delete()
        stream(conn).delete()


def test_a_stream_is_read_from_an_offset_with_a_prefetch_and_acks(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    stream = Queue(
        unique_name, queue_type="stream", consumer_arguments={"x-stream-offset": "first"}
    )
    got: list[bytes] = []
    with Connection(rabbit_cluster.urls) as conn:
        producer = Producer(conn, confirm_publish=True)
        for body in (b"1", b"2", b"3"):
            producer.publish(body, routing_key=unique_name, declare=[stream])
        # RabbitMQ's rules for streams: a prefetch limit and manual acks.
        reader = Consumer(conn, [stream], prefetch_count=10,
                          on_message=lambda m: (got.append(m.body), m.ack()))  # fmt: skip
        reader.consume()
        drain_until(conn, lambda: len(got) == 3, timeout=10)
        reader.cancel()
        Queue(unique_name)(conn).delete()
    assert got == [b"1", b"2", b"3"]  # read from the first offset, the stream keeps them


def test_redeliveries_are_counted_on_the_message_up_to_the_delivery_limit(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    with Connection(rabbit_cluster.urls) as conn:
        queue = Queue(unique_name, queue_type="quorum", delivery_limit=1)(conn)
        queue.declare()
        Producer(conn, confirm_publish=True).publish(b"job", routing_key=unique_name)
        counts: list[tuple[Any, ...]] = []
        while (message := queue.get()) is not None:
            counts.append((message.delivery_count, message.delivery_info["redelivered"]))
            message.requeue()
        queue.delete()
    # Delivered, returned, delivered again (counted), returned past the limit: dropped.
    assert counts == [(0, False), (1, True)]


def test_recovery_declares_the_quorum_queue_again_on_another_member(
    rabbit_cluster: RabbitCluster, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[bytes] = []
    queue = Queue(unique_name, queue_type="quorum", delivery_limit=3)
    conn = Connection(rabbit_cluster.urls, connect_timeout=2)
    try:
        Consumer(conn, [queue], on_message=lambda m: (got.append(m.body), m.ack())).consume()
        reached = conn.info()["node"]
        member = rabbit_cluster.node_of(int(reached.rsplit(":", 1)[1]))
        rabbit_cluster.kill(member)
        with pytest.raises(RecoverableConnectionError):
            drain_until(conn, lambda: False, timeout=10)
        with caplog.at_level(logging.WARNING, logger="broker.connection.recovery"):
            conn.ensure_connection()
        assert conn.info()["node"] != reached
        assert not [r for r in caplog.records if "could not restore" in r.getMessage()]
        with Connection(rabbit_cluster.urls[::-1]) as other:
            Producer(other, confirm_publish=True).publish(b"after", routing_key=unique_name)
        drain_until(conn, lambda: got == [b"after"], timeout=30)
        Queue(unique_name)(conn).delete()
    finally:
        conn.close()


def test_a_nacked_publish_is_retried_under_retry_true_within_the_policy(
    rabbit_cluster: RabbitCluster, unique_name: str
) -> None:
    queue = Queue(unique_name, queue_type="quorum", max_length=1,
                  queue_arguments={"x-overflow": "reject-publish"})  # fmt: skip
    with Connection(rabbit_cluster.urls) as conn:
        producer = Producer(conn, confirm_publish=True)
        for body in (b"1", b"2"):  # one past the limit is taken...
            producer.publish(body, routing_key=unique_name, declare=[queue])
        with pytest.raises(MessageNacked):  # ...then the broker refuses: a nack
            producer.publish(b"3", routing_key=unique_name)

        retried: list[BaseException] = []

        def make_room(exc: BaseException, delay: float) -> None:
            # Once over its limit, a quorum queue takes messages again only below
            # it: empty it while the retry waits.
            retried.append(exc)
            assert Queue(unique_name)(conn).purge() == 2

        started = time.monotonic()
        producer.publish(b"4", routing_key=unique_name, retry=True,
                         retry_policy={"errback": make_room, "interval_start": 0.1})  # fmt: skip
        took = time.monotonic() - started
        assert [type(exc) for exc in retried] == [MessageNacked]

        producer.publish(b"5", routing_key=unique_name)  # one past the limit again
        with pytest.raises(OperationalError, match="after 3 attempts") as caught:
            producer.publish(b"6", routing_key=unique_name, retry=True,
                             retry_policy={"max_retries": 2, "interval_start": 0.1})  # fmt: skip
        assert isinstance(caught.value.__cause__, MessageNacked)

        left = []
        while (message := Queue(unique_name)(conn).get(no_ack=True)) is not None:
            left.append(message.body)
        Queue(unique_name)(conn).delete()
    print(f"\n[cluster] a nacked publish confirmed on its retry after {took:.2f} s")
    assert left == [b"4", b"5"]
