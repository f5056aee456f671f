"""No confirmed message is lost when a node is killed; consumers come back by themselves.

Loss is counted the way RabbitMQ's and Jepsen's tests do (docs/architecture.rst): each
message carries a sequence number; every publish is recorded as confirmed or
unknown; after the faults every queue on every node is drained, and we check
that every confirmed message was drained (no loss) and that every drained
message was confirmed or unknown (no phantoms).
Duplicates are allowed (at-least-once) and reported.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Any

import pytest

from broker import Connection, Consumer, ConsumerLoop, Exchange, Producer, Queue
from broker.errors import BrokerError, NotFound, PublishError
from tests.support.rabbitnode import RabbitNode
from tests.support.wait import wait_until

TOTAL = 10_000
CHUNK = 500  # each chunk uses a fresh connection, like a short-lived web worker


def _drain(url: str, queue: str) -> list[int]:
    """Every sequence number left in ``queue`` on one node (acked as read)."""
    seqs: list[int] = []
    with Connection(url) as conn:
        ch = conn.channel()
        # Only a queue the node never got is no error: a failed drain must not pass for loss.
        with contextlib.suppress(NotFound):
            while (msg := ch.basic_get(queue=queue, no_ack=True)) is not None:
                seqs.append(int(msg.properties["application_headers"]["seq"]))
    return seqs


class Killer(threading.Thread):
    """Kills node A (SIGKILL) and restarts it, twice, while the publisher is on it."""

    def __init__(self, node: RabbitNode, progress: list[int]) -> None:
        super().__init__(daemon=True)
        self.node, self.progress = node, progress
        self.kills: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for threshold in (1_500, None):
                start = self.progress[0]
                goal = threshold if threshold is not None else start + 1_000
                wait_until(lambda goal=goal: self.progress[0] >= goal, 120)
                self.node.kill()
                self.kills.append(self.progress[0])
                self.node.start()
        except BaseException as exc:
            self.error = exc


@pytest.mark.timeout(300)
def test_no_confirmed_message_lost_while_node_a_is_killed_twice(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    queue = Queue(unique_name, Exchange(unique_name, "direct"), routing_key="k", durable=True)
    confirmed: set[int] = set()
    unknown: set[int] = set()
    confirmed_on: dict[int, str] = {}  # for the failure message: where each one was confirmed
    failovers = 0
    progress = [0]
    killer = Killer(a, progress)
    killer.start()
    for first in range(0, TOTAL, CHUNK):
        with Connection(f"{a.url};{b.url}", connect_timeout=2) as conn:
            producer = Producer(conn, exchange=queue.exchange, confirm_publish=True)
            for seq in range(first, first + CHUNK):
                if len(killer.kills) < 2:
                    time.sleep(0.002)  # keep the stream alive until both kills happened
                try:
                    producer.publish(
                        {"seq": seq},
                        routing_key="k",
                        headers={"seq": seq},
                        declare=[queue],
                        retry=True,
                        retry_policy={"max_retries": 20, "interval_start": 0.2,
                                      "interval_step": 0.2, "interval_max": 1},
                        confirm_timeout=5,
                    )  # fmt: skip
                    confirmed.add(seq)
                    confirmed_on[seq] = conn.host
                except (PublishError, BrokerError):
                    unknown.add(seq)
                progress[0] = len(confirmed) + len(unknown)
            failovers += conn.host == f"127.0.0.1:{b.port}"
    killer.join(60)
    assert killer.error is None and len(killer.kills) == 2, killer.kills
    a.start()

    drained_a, drained_b = _drain(a.url, unique_name), _drain(b.url, unique_name)
    drained = drained_a + drained_b
    counts = collections.Counter(drained)
    lost = confirmed - counts.keys()
    phantoms = counts.keys() - confirmed - unknown
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\nloss test: published {TOTAL}, confirmed {len(confirmed)}, unknown {len(unknown)}, "
        f"drained {len(drained)} ({len(counts)} distinct), lost {len(lost)}, "
        f"duplicates {duplicates}, phantoms {len(phantoms)}, chunks ending on B {failovers}, "
        f"kills at {killer.kills}"
    )
    where = collections.Counter(confirmed_on[seq] for seq in lost)
    assert not lost, (
        f"{len(lost)} confirmed messages lost: {sorted(lost)[:20]}; confirmed on {dict(where)}; "
        f"drained from A {len(drained_a)}, from B {len(drained_b)}"
    )
    assert not phantoms
    assert len(confirmed) >= TOTAL * 0.99


@pytest.mark.timeout(240)
def test_consumer_keeps_receiving_across_a_node_kill_and_restart(
    rabbit_node: RabbitNode, unique_name: str
) -> None:
    total = 5_000
    queue = Queue(unique_name, Exchange(unique_name, "direct"), routing_key="k", durable=True)
    with Connection(rabbit_node.url) as conn:
        producer = Producer(conn, exchange=queue.exchange, confirm_publish=True)
        with producer.confirms(timeout=60):
            for seq in range(total):
                producer.publish({"seq": seq}, routing_key="k", declare=[queue])

    received: collections.Counter[int] = collections.Counter()
    killed = threading.Event()

    def handle(body: Any, message: Any) -> None:
        received[body["seq"]] += 1
        message.ack()
        time.sleep(0.0005)  # a little work per message, so the kill lands mid-stream

    conn = Connection(rabbit_node.url, connect_timeout=2)
    loop = ConsumerLoop(
        conn,
        lambda channel: [Consumer(channel, queues=[queue], callbacks=[handle], prefetch_count=100)],
    )
    runner = threading.Thread(target=loop.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: len(received) >= 1_500, 60, message="1500 not received before the kill")
        rabbit_node.kill()
        killed.set()
        rabbit_node.start()
        wait_until(
            lambda: len(received) >= total, 120, interval=0.05, message="not every message arrived"
        )
    finally:
        loop.stop()
        runner.join(10)
        conn.close()
    redelivered = sum(n - 1 for n in received.values())
    print(
        f"\nconsumer recovery: {total} published, {len(received)} distinct received, "
        f"{redelivered} redelivered, reconnects {loop.reconnects}"
    )
    assert set(received) == set(range(total))
    assert loop.reconnects >= 1
