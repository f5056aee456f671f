"""Consuming on an asyncio Redis channel: gets, consumers, prefetch, acks and requeues.

The asyncio sibling of :mod:`transports.redis.consuming`, with the same
rules (:func:`~transports.redis.consuming.allowance`,
:func:`~transports.redis.consuming.settled_tags`,
:func:`~transports.redis.consuming.check_qos`) and the same script
operations. :class:`AsyncConsuming` is the consuming side of one channel:
the delivery tags it handed out, the prefetch limit, the consumers and which
consumer holds each unacked delivery; Redis keeps the messages themselves.

One difference: several tasks may use a channel at once, and a delivery call
of the connection may be on its way while a task calls ``basic_get``. So a
call that may hand out delivery tags reserves them first (``next_tag`` moves
on before the call is sent): two calls never number two messages alike. A
reserved tag that no message took is simply never used.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, Protocol

from broker.errors import (
    BrokerError,
    ChannelError,
    IrrecoverableChannelError,
    RecoverableConnectionError,
)
from transports import base
from transports._shared.replies import precondition
from transports.redis.aio.link import Orphan
from transports.redis.consuming import allowance, check_qos, flag, settled_tags
from transports.redis.message import Message
from transports.redis.options import RedisSettings

__all__ = ["AsyncConsumer", "AsyncConsuming", "ConsumingChannel", "ConsumingHost"]


class ConsumingChannel(Protocol):
    """What :class:`AsyncConsuming` needs of the channel that holds it.

    The channel is also what delivered messages name as their ``channel``.
    """

    @property
    def uid(self) -> str:
        """The channel's id in Redis (its unacked hash is kept under it)."""
        ...

    @property
    def is_open(self) -> bool:
        """True until the channel or its connection is closed."""
        ...

    async def call(self, op: str, *args: Any, orphan: Orphan | None = None) -> Any:
        """Run one broker-script operation; a channel error closes the channel and is raised."""
        ...

    async def fail(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it."""
        ...

    def closed_error(self) -> BrokerError:
        """What a call on the closed channel raises."""
        ...


class ConsumingHost(Protocol):
    """What :class:`AsyncConsuming` needs of the connection."""

    @property
    def uid(self) -> str:
        """The connection's id in Redis (its lease is kept under it)."""
        ...

    @property
    def settings(self) -> RedisSettings:
        """The transport options (lease length, largest delivery batch)."""
        ...

    async def call(self, op: str, *args: Any, orphan: Orphan | None = None) -> Any:
        """One broker-script operation; a connection failure tears the connection down."""
        ...

    async def hdel(self, key: str, *fields: int) -> int:
        """HDEL under the key prefix (the fast path of a single ack)."""
        ...

    def lease_lost(self) -> RecoverableConnectionError:
        """Close the connection after finding its lease gone; the error to raise."""
        ...

    def wake(self) -> None:
        """Ask Redis for deliveries soon (room was freed)."""
        ...

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run the coroutine ``work`` in a task of the connection's (errors are logged)."""
        ...

    async def add_consumer(self, consumer: AsyncConsumer) -> None:
        """Start delivering to ``consumer`` (and waking up for its queue)."""
        ...

    async def remove_consumer(self, consumer: AsyncConsumer) -> None:
        """Stop delivering to ``consumer``."""
        ...


class AsyncConsumer:
    """One ``basic_consume`` of an asyncio channel.

    Attributes:
        consuming: the consuming side of the channel it belongs to.
        unacked: how many of its deliveries are not settled yet.
    """

    __slots__ = ("callback", "consuming", "no_ack", "on_cancel", "queue", "tag", "unacked")

    def __init__(
        self,
        consuming: AsyncConsuming,
        queue: str,
        tag: str,
        no_ack: bool,
        callback: base.MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
    ) -> None:
        self.consuming = consuming
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.callback = callback
        self.on_cancel = on_cancel
        self.unacked = 0

    def __repr__(self) -> str:
        return f"<redis AsyncConsumer {self.tag!r} queue={self.queue!r} unacked={self.unacked}>"


class AsyncConsuming:
    """The consuming side of one asyncio channel (see the module docstring).

    Attributes:
        next_tag: the next delivery tag not handed out or reserved yet.
        prefetch_count: the most unacked pushed deliveries (0: no limit).
        prefetch_global: the limit is the channel's, shared by its consumers.
        consumers: the channel's consumers by tag.
        unacked: each unacked delivery tag and the consumer holding it
            (``None`` for a ``basic_get``).
    """

    def __init__(self, channel: ConsumingChannel, connection: ConsumingHost) -> None:
        self.channel = channel
        self.connection = connection
        self.next_tag = 1
        self.prefetch_count = 0
        self.prefetch_global = False
        self.consumers: dict[str, AsyncConsumer] = {}
        self.unacked: dict[int, AsyncConsumer | None] = {}

    @property
    def uid(self) -> str:
        """The channel's id in Redis."""
        return self.channel.uid

    def reserve(self, count: int) -> int:
        """Reserve ``count`` delivery tags for a call about to be sent; the first of them."""
        first = self.next_tag
        self.next_tag = first + count
        return first

    # -- the channel's methods ------------------------------------------------------------

    async def get(self, queue: str, no_ack: bool) -> Message | None:
        """``basic_get``: the next ready message, or ``None`` when the queue is empty.

        A caller cancelled while the reply is on its way gives the message back.
        """
        tag = self.reserve(1)
        connection = self.connection

        def give_back(found: Any) -> None:
            if found and not no_ack and self.channel.is_open:
                connection.spawn(connection.call("settle", self.uid, "requeue", tag))

        found = await self.channel.call(
            "get", queue, self.uid, tag, flag(no_ack), connection.uid,
            connection.settings.lease_ms, orphan=give_back,
        )  # fmt: skip
        if not found:
            return None
        if not no_ack:
            self.unacked[tag] = None
        return Message.delivered(found[0], self.channel, tag, message_count=int(found[1]))

    async def consume(
        self,
        queue: str,
        consumer_tag: str,
        no_ack: bool,
        exclusive: bool,
        callback: base.MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
    ) -> str:
        """``basic_consume``: start a consumer and return its tag."""
        tag = consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        if tag in self.consumers:
            reuse = f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            await self.channel.fail(IrrecoverableChannelError(reuse, reply_code=530))
        await self.channel.call(
            "consume", self.connection.uid, self.uid, queue, tag, flag(exclusive)
        )
        consumer = AsyncConsumer(self, queue, tag, no_ack, callback, on_cancel)
        self.consumers[tag] = consumer
        await self.connection.add_consumer(consumer)
        return tag

    async def cancel(self, consumer_tag: str) -> None:
        """``basic_cancel``: what the consumer holds unacked stays unacked on the channel."""
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is None:
            return
        await self.connection.remove_consumer(consumer)
        await self.channel.call(
            "cancel", self.connection.uid, self.uid, consumer.queue, consumer.tag
        )

    async def ack(self, delivery_tag: int, multiple: bool) -> None:
        """``basic_ack``: one delivery, or every one up to ``delivery_tag``."""
        await self._settle(delivery_tag, multiple, "ack")

    async def reject(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        """``basic_reject``/``basic_nack``: back to the queue when ``requeue``, else dropped."""
        await self._settle(delivery_tag, multiple, "requeue" if requeue else "drop")

    async def qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """``basic_qos``: limit unacked pushed deliveries, per consumer or per channel."""
        refused = check_qos(prefetch_size, prefetch_count)
        if refused is not None:
            await self.channel.fail(refused)
        self.prefetch_count = prefetch_count
        self.prefetch_global = a_global
        self.connection.wake()

    async def recover(self) -> None:
        """``basic_recover``: every unacked message goes back to its queue."""
        await self.channel.call("recover", self.uid)
        self.connection.wake()
        for consumer in self.unacked.values():
            if consumer is not None:
                consumer.unacked -= 1
        self.unacked.clear()

    def clear(self) -> list[AsyncConsumer]:
        """Forget every consumer and unacked delivery (the channel is closing); the consumers."""
        consumers = list(self.consumers.values())
        self.consumers.clear()
        self.unacked.clear()
        return consumers

    # -- what the connection's delivery calls use ---------------------------------------------

    def room_for(self, consumer: AsyncConsumer, shared: dict[AsyncConsuming, int]) -> int:
        """How many more deliveries ``consumer`` may take now (as the synchronous side)."""
        served = shared.get(self, 0)
        if self.prefetch_global and self.prefetch_count and not consumer.no_ack:
            shared[self] = served + 1  # this consumer takes one of the channel's shares
        return allowance(
            self.prefetch_count, self.prefetch_global, self.connection.settings.max_batch,
            no_ack=consumer.no_ack, held=consumer.unacked, channel_unacked=len(self.unacked),
            consumers=len(self.consumers), served=served,
        )  # fmt: skip

    def deliver(self, consumer: AsyncConsumer, tag: int, item: bytes) -> bool:
        """Hand ``consumer`` one message a delivery call took for it.

        Returns False when the consumer was cancelled meanwhile, or its channel
        closed: an acked-mode message must then be put back.
        """
        if self.consumers.get(consumer.tag) is not consumer:
            return consumer.no_ack
        if not consumer.no_ack:
            self.unacked[tag] = consumer
            consumer.unacked += 1
        if consumer.callback is not None:
            consumer.callback(Message.delivered(item, self.channel, tag, consumer.tag))
        return True

    async def put_back(self, tags: list[int]) -> None:
        """Requeue deliveries taken for a consumer that is gone."""
        if self.channel.is_open:
            await self.connection.call("settle", self.uid, "requeue", *tags)

    async def queue_gone(self, consumer: AsyncConsumer) -> None:
        """The consumer's queue was deleted: cancel it and tell its ``on_cancel``."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        await self.connection.remove_consumer(consumer)
        if consumer.on_cancel is not None:
            consumer.on_cancel(consumer.tag)

    # -- settling ---------------------------------------------------------------------------

    async def _settle(self, delivery_tag: int, multiple: bool, mode: str) -> None:
        if not self.channel.is_open:
            raise self.channel.closed_error()
        unacked = self.unacked
        tags = settled_tags(unacked, delivery_tag, multiple)
        if tags is None:
            await self.channel.fail(precondition(f"unknown delivery tag {delivery_tag}"))
        for tag in tags:
            consumer = unacked.pop(tag)
            if consumer is not None:
                consumer.unacked -= 1
        if not tags:
            return
        connection = self.connection
        if mode == "ack" and len(tags) == 1:
            found = await connection.hdel(f"u:{self.uid}", tags[0])
        else:
            found = await connection.call("settle", self.uid, mode, *tags)
        if found != len(tags):
            raise connection.lease_lost()
        connection.wake()  # room for more deliveries

    def __repr__(self) -> str:
        return (
            f"<redis AsyncConsuming {self.uid} consumers={len(self.consumers)} "
            f"unacked={len(self.unacked)} prefetch={self.prefetch_count}>"
        )
