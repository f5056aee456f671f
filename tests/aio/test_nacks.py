"""Nacks on asyncio: retried under ``retry=True`` within the policy; a nacked channel left behind.

On the machine's RabbitMQ, a quorum queue with ``x-overflow: reject-publish``
and ``x-max-length=1`` nacks on purpose (it takes one message past its
limit, then refuses), which makes the nack path deterministic, as in
``tests/cluster/test_quorum_queues.py`` for the synchronous producer. A single
node runs quorum queues too.

Without a broker, a scripted channel settles publishes when the test says
so: it shows that a nack seen by one task does not take the channel from
under another task still waiting for its confirm there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

import broker
from broker import Queue
from broker.aio import Connection, Producer
from broker.errors import MessageNacked, OperationalError
from transports.base_aio import AsyncChannel
from transports.memory.aio import AsyncMemoryChannel
from transports.memory.channel import MemoryChannel

pytestmark = pytest.mark.asyncio


# -- on RabbitMQ -----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def rabbit(rabbitmq_url: str, unique_name: str) -> AsyncIterator[Connection]:
    """A connection to the machine's RabbitMQ; the test's queue is deleted afterwards."""
    conn = Connection(rabbitmq_url, connect_timeout=5)
    yield conn
    channel = await conn.channel()
    await channel.queue_delete(unique_name)
    await conn.close()


def bounded_quorum_queue(name: str) -> Queue:
    """A quorum queue that nacks every publish once it holds two messages."""
    return Queue(name, queue_type="quorum", max_length=1,
                 queue_arguments={"x-overflow": "reject-publish"})  # fmt: skip


async def fill(producer: Producer, name: str) -> None:
    """Declare the queue and fill it to the point where the broker nacks."""
    for body in (b"1", b"2"):  # one past the limit is taken...
        await producer.publish(body, routing_key=name, declare=[bounded_quorum_queue(name)])


async def drain(conn: Connection, name: str) -> list[bytes]:
    channel = await conn.channel()
    left = []
    while (message := await channel.basic_get(name, no_ack=True)) is not None:
        left.append(message.body)
    await channel.close()
    return left


def opened(producer: Producer) -> AsyncChannel:
    channel = producer.channel
    assert channel is not None
    return channel


@pytest.mark.broker
async def test_a_nack_is_raised_at_once_and_the_next_publish_goes_on_a_new_channel(
    rabbit: Connection, unique_name: str
) -> None:
    producer = Producer(rabbit, confirm_publish=True)
    await fill(producer, unique_name)
    nacked = opened(producer)
    with pytest.raises(MessageNacked):  # ...then the broker refuses: a nack
        await producer.publish(b"3", routing_key=unique_name)
    assert producer.channel is None and not nacked.is_open
    await (await rabbit.channel()).queue_purge(unique_name)
    await producer.publish(b"4", routing_key=unique_name)
    assert opened(producer) is not nacked
    assert await drain(rabbit, unique_name) == [b"4"]
    await producer.close()


@pytest.mark.broker
async def test_a_nacked_publish_is_retried_under_retry_true_within_the_policy(
    rabbit: Connection, unique_name: str
) -> None:
    producer = Producer(rabbit, confirm_publish=True)
    await fill(producer, unique_name)
    retried: list[BaseException] = []

    async def make_room(exc: BaseException, delay: float) -> None:
        # Once over its limit, a quorum queue takes messages again only below
        # it: empty it while the retry waits.
        retried.append(exc)
        assert await (await rabbit.channel()).queue_purge(unique_name) == 2

    await producer.publish(b"3", routing_key=unique_name, retry=True,
                           retry_policy={"errback": make_room, "interval_start": 0.1})  # fmt: skip
    assert [type(exc) for exc in retried] == [MessageNacked]

    await producer.publish(b"4", routing_key=unique_name)  # one past the limit again
    with pytest.raises(OperationalError, match="after 3 attempts") as caught:
        await producer.publish(b"5", routing_key=unique_name, retry=True,
                               retry_policy={"max_retries": 2, "interval_start": 0.1})  # fmt: skip
    assert isinstance(caught.value.__cause__, MessageNacked)
    assert await drain(rabbit, unique_name) == [b"3", b"4"]
    await producer.close()


@pytest.mark.broker
async def test_a_batch_with_nacks_leaves_its_channel_behind(
    rabbit: Connection, unique_name: str
) -> None:
    await fill(Producer(rabbit, confirm_publish=True), unique_name)
    producer = Producer(rabbit)
    with pytest.raises(MessageNacked, match="nacked 2 of 2"):
        async with producer.confirms(timeout=10) as batch:
            for body in (b"3", b"4"):
                await producer.publish(body, routing_key=unique_name, message_id=body.decode())
    assert [record.message_id for record in batch.nacked] == ["3", "4"]
    assert producer.channel is None
    await (await rabbit.channel()).queue_purge(unique_name)
    async with producer.confirms(timeout=10) as batch:
        await producer.publish(b"5", routing_key=unique_name)
    assert batch.confirmed == 1
    assert await drain(rabbit, unique_name) == [b"5"]
    await producer.close()


# -- a scripted channel: many tasks on one producer --------------------------------------------


class ScriptedChannel(AsyncMemoryChannel):
    """A memory channel whose broker confirms later: tag N when the test calls ``settle(N, ...)``.

    Publishes are recorded, not routed.
    """

    def __init__(self, channel: MemoryChannel, settled: asyncio.Event) -> None:
        super().__init__(channel)
        self.settled = settled
        self.published: list[bytes] = []
        self.closed = False

    @property
    def is_open(self) -> bool:
        return not self.closed

    @property
    def confirms_synchronously(self) -> bool:
        return False

    async def basic_publish(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.published.append(msg.body)

    def settle(self, tag: int, outcome: str) -> None:
        listener = self.confirm_listener
        assert listener is not None
        (listener.on_nack if outcome == "nack" else listener.on_ack)(tag, False)
        self.settled.set()

    async def close(self) -> None:
        self.closed = True
        await super().close()


class ScriptedOwner:
    """What an asyncio producer needs of its connection, opening scripted channels."""

    is_blocked = False

    def __init__(self, memory: broker.Connection) -> None:
        self.memory = memory
        self.transport_options: dict[str, Any] = {}
        self.opened: list[ScriptedChannel] = []
        self.settled = asyncio.Event()

    async def channel(self) -> ScriptedChannel:
        channel = ScriptedChannel(self.memory.channel(), self.settled)
        self.opened.append(channel)
        return channel

    async def drain_events(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.settled.wait()
        self.settled.clear()


@pytest.fixture
def owner() -> Iterator[ScriptedOwner]:
    with broker.Connection("memory://") as memory:
        yield ScriptedOwner(memory)


async def published(owner: ScriptedOwner, index: int, count: int) -> ScriptedChannel:
    """Channel ``index`` once ``count`` publishes were written on it (the tasks ran)."""
    while len(owner.opened) <= index or len(owner.opened[index].published) < count:
        await asyncio.sleep(0)
    return owner.opened[index]


async def test_a_nack_leaves_the_channel_to_the_tasks_still_waiting_on_it(
    owner: ScriptedOwner,
) -> None:
    producer = Producer(owner, confirm_publish=True)  # type: ignore[arg-type]
    first = asyncio.create_task(producer.publish(b"a"))
    second = asyncio.create_task(producer.publish(b"b"))
    old = await published(owner, 0, 2)
    old.settle(2, "nack")
    with pytest.raises(MessageNacked):
        await second
    assert old.is_open  # the first task still waits for its confirm on it...
    third = asyncio.create_task(producer.publish(b"c"))  # ...new publishes go on a new channel
    new = await published(owner, 1, 1)
    new.settle(1, "ack")
    await third
    assert old.is_open
    old.settle(1, "ack")
    await first  # its confirm still arrived
    assert (old.is_open, new.is_open) == (False, True)  # the last waiter closed the old one
    assert [channel.published for channel in owner.opened] == [[b"a", b"b"], [b"c"]]


async def test_a_late_nack_does_not_take_the_new_channel_away(owner: ScriptedOwner) -> None:
    producer = Producer(owner, confirm_publish=True)  # type: ignore[arg-type]
    first = asyncio.create_task(producer.publish(b"a"))
    second = asyncio.create_task(producer.publish(b"b"))
    old = await published(owner, 0, 2)
    old.settle(1, "nack")
    with pytest.raises(MessageNacked):
        await first
    third = asyncio.create_task(producer.publish(b"c"))
    new = await published(owner, 1, 1)
    old.settle(2, "nack")  # the old channel's second nack comes after the move
    with pytest.raises(MessageNacked):
        await second
    assert new.is_open and producer.channel is new  # the producer stays on the new one
    new.settle(1, "ack")
    await third
    assert not old.is_open
