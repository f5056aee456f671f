"""Kill -9 of a RabbitMQ node under the asyncio API: no confirmed message lost, consumers move.

The nodes are the reliability tier's (``tests/reliability/conftest.py``):
two independent extra nodes A and B; the node on 5672 is never touched.
Loss is counted as in ``tests/reliability/test_no_loss.py``: every message
carries a sequence number, every publish is recorded as confirmed or
unknown, and after the fault both nodes are drained.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from broker import Exchange, Queue
from broker.aio import Connection
from broker.errors import BrokerError, ConnectionBlockedTimeout, NotFound
from tests.support.rabbitnode import RabbitNode

pytestmark = [pytest.mark.asyncio, pytest.mark.extra_nodes]

TOTAL = 3000


async def _drain(url: str, queue: str) -> list[int]:
    seqs: list[int] = []
    async with Connection(url) as conn:
        channel = await conn.channel()
        with contextlib.suppress(NotFound):  # a node that never got the queue
            while (msg := await channel.basic_get(queue, no_ack=True)) is not None:
                seqs.append(int(msg.properties["application_headers"]["seq"]))
    return seqs


@pytest.mark.timeout(300)
async def test_no_confirmed_message_is_lost_when_a_node_is_killed(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    queue = Queue(unique_name, Exchange(unique_name, "direct"), routing_key="k", durable=True)
    confirmed: set[int] = set()
    unknown: set[int] = set()
    async with Connection(f"{a.url};{b.url}", connect_timeout=2, heartbeat=2) as conn:
        producer = conn.Producer(exchange=queue.exchange, confirm_publish=True)
        for seq in range(TOTAL):
            if seq == TOTAL // 3:
                await asyncio.to_thread(a.kill)
            try:
                await producer.publish(
                    {"seq": seq}, routing_key="k", headers={"seq": seq}, delivery_mode=2,
                    declare=[queue], retry=True, confirm_timeout=10,
                )  # fmt: skip
            except BrokerError:
                unknown.add(seq)
            else:
                confirmed.add(seq)
        assert conn.host == b.host  # it failed over
    drained = await _drain(b.url, unique_name)
    await asyncio.to_thread(a.start)
    drained += await _drain(a.url, unique_name)
    lost = confirmed - set(drained)
    phantoms = set(drained) - confirmed - unknown
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:10]}"
    assert not phantoms
    assert len(confirmed) >= TOTAL * 0.9


@pytest.mark.timeout(300)
async def test_a_consumer_resumes_on_the_other_node_after_a_kill(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    queue = Queue(unique_name, durable=True)
    reconnected = asyncio.Event()
    async with Connection(
        f"{a.url};{b.url}", connect_timeout=2, heartbeat=2,
        on_connect=lambda conn: reconnected.set(),
    ) as conn:  # fmt: skip
        consumer = conn.Consumer([queue], prefetch_count=10)
        await consumer.consume()
        reconnected.clear()
        await asyncio.to_thread(a.kill)
        await asyncio.wait_for(reconnected.wait(), 30)
        assert conn.host == b.host and consumer.is_consuming
        # The recovery declared the queue on B and consumes from it there.
        await conn.Producer(routing_key=unique_name).publish("on B", retry=True)
        message = await consumer.get(timeout=10)
        assert message.payload == "on B"
        await message.ack()
        await consumer.close()
        await (await conn.channel()).queue_delete(unique_name)


@pytest.mark.timeout(120)
async def test_blocked_hooks_fire_and_a_connection_blocked_too_long_is_dropped(
    rabbit_node: RabbitNode, unique_name: str
) -> None:
    events: list[str] = []
    closed: list[BaseException | None] = []
    blocked = asyncio.Event()

    async def on_blocked(reason: str) -> None:
        events.append("blocked")
        blocked.set()

    conn = Connection(
        rabbit_node.url, blocked_connection_timeout=1, on_blocked=on_blocked,
        on_unblocked=lambda: events.append("unblocked"),
        on_close=lambda c, exc: closed.append(exc),
    )  # fmt: skip
    queue = Queue(unique_name, durable=False)
    producer = conn.Producer(routing_key=unique_name)
    await producer.publish(b"before", declare=[queue])  # only a publishing connection is blocked
    await asyncio.to_thread(rabbit_node.set_memory_alarm, True)
    try:
        await producer.publish(b"while blocked")
        await asyncio.wait_for(blocked.wait(), 15)
        assert conn.is_blocked
        await asyncio.sleep(2)  # past blocked_connection_timeout
        assert not conn.connected
        assert any(isinstance(exc, ConnectionBlockedTimeout) for exc in closed)
    finally:
        await asyncio.to_thread(rabbit_node.set_memory_alarm, False)
        await conn.close()
    assert events[0] == "blocked"
