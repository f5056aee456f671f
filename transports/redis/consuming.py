"""Consuming on a Redis channel: gets, consumers, prefetch, acks and requeues.

:class:`Consuming` is the consuming side of one
:class:`~transports.redis.channel.RedisChannel`, which holds it and
delegates its ``basic_*`` methods to it. It keeps the delivery tags the
channel handed out, the prefetch limit, the consumers and which consumer
holds each unacked delivery; Redis keeps the messages themselves (in the
channel's unacked hash) until they are acked, rejected or put back.

What it needs of its channel (:class:`ConsumingChannel`) and of the
connection (:class:`ConsumingHost`) are declared below, so this module
imports neither; the connection drives deliveries through the public
:meth:`Consuming.room_for`, :meth:`Consuming.deliver`,
:meth:`Consuming.put_back` and :meth:`Consuming.queue_gone`.

Threads: the bookkeeping is guarded by the connection's lock
(:attr:`ConsumingHost.lock`), so a worker thread may ack, reject or requeue
while another thread drains or uses the channel. A consumer callback never
runs under it: :meth:`Consuming.deliver` hands the call back to the
connection, which makes it after letting go of the lock.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from broker.errors import (
    BrokerError,
    ChannelError,
    ConfigurationError,
    IrrecoverableChannelError,
    RecoverableConnectionError,
)
from transports import base
from transports._shared.replies import not_implemented, precondition
from transports.redis.message import Message
from transports.redis.options import RedisSettings

__all__ = [
    "Consumer",
    "Consuming",
    "ConsumingChannel",
    "ConsumingHost",
    "Handoff",
    "allowance",
    "check_qos",
    "flag",
    "settled_tags",
]

#: A consumer and a message for its callback, called once the connection's lock is let go.
Handoff = tuple["Consumer", Message]


def flag(value: bool) -> int:
    """A boolean argument as the broker script reads it."""
    return 1 if value else 0


# -- pure rules, shared with the asyncio transport (transports/redis/aio) -----------------------


def allowance(
    limit: int,
    per_channel: bool,
    batch: int,
    *,
    no_ack: bool,
    held: int,
    channel_unacked: int,
    consumers: int,
    served: int,
) -> int:
    """How many more deliveries one consumer may take in one delivery call.

    Args:
        limit: the channel's ``prefetch_count`` (0: no limit).
        per_channel: the limit is the channel's (``a_global``), split between
            its ``consumers``; else each consumer's.
        batch: the most one call takes per consumer (``max_batch``).
        no_ack: the consumer's deliveries are settled on delivery (no limit).
        held: the consumer's unacked deliveries.
        channel_unacked: the channel's unacked deliveries.
        consumers: the channel's consumers.
        served: the channel's consumers already given a share in this call.
    """
    if not limit or no_ack:
        return batch
    if not per_channel:
        return min(batch, limit - held)
    available = max(0, limit - channel_unacked)
    share = available // consumers + (1 if served < available % consumers else 0)
    return min(batch, share)


def settled_tags(
    unacked: Mapping[int, object], delivery_tag: int, multiple: bool
) -> list[int] | None:
    """The unacked tags an ack/reject of ``delivery_tag`` settles; ``None``: an unknown tag.

    ``multiple`` with tag 0 settles everything (possibly nothing); an unknown
    single tag is the channel error RabbitMQ raises (``PRECONDITION_FAILED``).
    """
    if multiple:
        tags = [t for t in unacked if t <= delivery_tag or delivery_tag == 0]
    elif delivery_tag in unacked:
        tags = [delivery_tag]
    else:
        tags = []
    if not tags and not (multiple and delivery_tag == 0):
        return None
    return tags


def check_qos(prefetch_size: int, prefetch_count: int) -> ChannelError | None:
    """The channel error a ``basic_qos`` gets (``prefetch_size`` is not implemented), or None.

    Raises:
        broker.errors.ConfigurationError: ``prefetch_count`` is not an integer in 0..65535.
    """
    if prefetch_size:
        return not_implemented(f"prefetch_size!=0 ({prefetch_size})")
    if isinstance(prefetch_count, bool) or not isinstance(prefetch_count, int):
        raise ConfigurationError(f"prefetch_count must be an integer, got {prefetch_count!r}")
    if not 0 <= prefetch_count <= 65535:
        raise ConfigurationError(f"prefetch_count must be in 0..65535, got {prefetch_count}")
    return None


class ConsumingChannel(Protocol):
    """What :class:`Consuming` needs of the channel that holds it (a ``RedisChannel``).

    The channel is also what delivered messages name as their ``channel``,
    so that ``message.ack()`` reaches it.
    """

    @property
    def uid(self) -> str:
        """The channel's id in Redis (its unacked hash is kept under it)."""
        ...

    @property
    def is_open(self) -> bool:
        """True until the channel or its connection is closed."""
        ...

    def call(self, op: str, *args: Any) -> Any:
        """Run one broker-script operation; a channel error closes the channel and is raised."""
        ...

    def fail(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it."""
        ...

    def closed_error(self) -> BrokerError:
        """What a call on the closed channel raises."""
        ...


class ConsumingHost(Protocol):
    """What :class:`Consuming` needs of the connection (a ``RedisConnection``)."""

    @property
    def lock(self) -> threading.RLock:
        """Guards the consuming bookkeeping of every channel of the connection."""
        ...

    @property
    def uid(self) -> str:
        """The connection's id in Redis (its lease is kept under it)."""
        ...

    @property
    def settings(self) -> RedisSettings:
        """The transport options (lease length, largest delivery batch)."""
        ...

    def call(self, op: str, *args: Any) -> Any:
        """One broker-script operation; a connection failure tears the connection down."""
        ...

    def hdel(self, key: str, *fields: int) -> int:
        """HDEL under the key prefix (the fast path of a single ack)."""
        ...

    def lease_lost(self) -> RecoverableConnectionError:
        """Close the connection after finding its lease gone; the error to raise."""
        ...

    def wake(self) -> None:
        """Ask Redis for deliveries on the next ``drain_events`` (room was freed)."""
        ...

    def add_consumer(self, consumer: Consumer) -> None:
        """Start delivering to ``consumer`` (and waking up for its queue)."""
        ...

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop delivering to ``consumer``."""
        ...


class Consumer:
    """One ``basic_consume`` of a channel.

    Attributes:
        consuming: the consuming side of the channel it belongs to.
        unacked: how many of its deliveries are not settled yet.
    """

    __slots__ = ("callback", "consuming", "no_ack", "on_cancel", "queue", "tag", "unacked")

    def __init__(
        self,
        consuming: Consuming,
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
        return f"<redis Consumer {self.tag!r} queue={self.queue!r} unacked={self.unacked}>"


class Consuming:
    """The consuming side of one channel (see the module docstring).

    Attributes:
        next_tag: the delivery tag of the channel's next delivery.
        prefetch_count: the most unacked pushed deliveries (0: no limit).
        prefetch_global: the limit is the channel's, shared by its consumers,
            rather than each consumer's.
        consumers: the channel's consumers by tag.
        unacked: each unacked delivery tag and the consumer holding it
            (``None`` for a ``basic_get``).
    """

    __slots__ = (
        "channel",
        "connection",
        "consumers",
        "next_tag",
        "prefetch_count",
        "prefetch_global",
        "unacked",
    )

    def __init__(self, channel: ConsumingChannel, connection: ConsumingHost) -> None:
        self.channel = channel
        self.connection = connection
        self.next_tag = 1
        self.prefetch_count = 0
        self.prefetch_global = False
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict[int, Consumer | None] = {}

    @property
    def uid(self) -> str:
        """The channel's id in Redis."""
        return self.channel.uid

    # -- the channel's methods ------------------------------------------------------------

    def get(self, queue: str, no_ack: bool) -> Message | None:
        """``basic_get``: the next ready message, or ``None`` when the queue is empty."""
        with self.connection.lock:
            return self._get(queue, no_ack)

    def _get(self, queue: str, no_ack: bool) -> Message | None:
        tag = self.next_tag
        connection = self.connection
        found = self.channel.call("get", queue, self.uid, tag, flag(no_ack), connection.uid,
                                  connection.settings.lease_ms)  # fmt: skip
        if not found:
            return None
        self.next_tag = tag + 1
        if not no_ack:
            self.unacked[tag] = None
        return Message.delivered(found[0], self.channel, tag, message_count=int(found[1]))

    def consume(
        self,
        queue: str,
        consumer_tag: str,
        no_ack: bool,
        exclusive: bool,
        callback: base.MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
    ) -> str:
        """``basic_consume``: start a consumer and return its tag."""
        with self.connection.lock:
            return self._consume(queue, consumer_tag, no_ack, exclusive, callback, on_cancel)

    def _consume(
        self,
        queue: str,
        consumer_tag: str,
        no_ack: bool,
        exclusive: bool,
        callback: base.MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
    ) -> str:
        tag = consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        if tag in self.consumers:
            reuse = f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            self.channel.fail(IrrecoverableChannelError(reuse, reply_code=530))
        self.channel.call("consume", self.connection.uid, self.uid, queue, tag, flag(exclusive))
        consumer = Consumer(self, queue, tag, no_ack, callback, on_cancel)
        self.consumers[tag] = consumer
        self.connection.add_consumer(consumer)
        return tag

    def cancel(self, consumer_tag: str) -> None:
        """``basic_cancel``: what the consumer holds unacked stays unacked on the channel."""
        with self.connection.lock:
            consumer = self.consumers.pop(consumer_tag, None)
            if consumer is None:
                return
            self.connection.remove_consumer(consumer)
            self.channel.call("cancel", self.connection.uid, self.uid, consumer.queue, consumer.tag)

    def ack(self, delivery_tag: int, multiple: bool) -> None:
        """``basic_ack``: one delivery, or every one up to ``delivery_tag``; from any thread."""
        with self.connection.lock:
            self._settle(delivery_tag, multiple, "ack")

    def reject(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        """``basic_reject``/``basic_nack``: back to the queue when ``requeue``, else dropped."""
        with self.connection.lock:
            self._settle(delivery_tag, multiple, "requeue" if requeue else "drop")

    def qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """``basic_qos``: limit unacked pushed deliveries, per consumer or per channel."""
        refused = check_qos(prefetch_size, prefetch_count)
        if refused is not None:
            self.channel.fail(refused)
        with self.connection.lock:
            self.prefetch_count = prefetch_count
            self.prefetch_global = a_global
        self.connection.wake()

    def recover(self) -> None:
        """``basic_recover``: every unacked message goes back to its queue."""
        with self.connection.lock:
            self.channel.call("recover", self.uid)
            for consumer in self.unacked.values():
                if consumer is not None:
                    consumer.unacked -= 1
            self.unacked.clear()
        self.connection.wake()

    def clear(self) -> list[Consumer]:
        """Forget every consumer and unacked delivery (the channel is closing).

        Returns:
            the consumers that were active, for the caller to detach.
        """
        with self.connection.lock:
            consumers = list(self.consumers.values())
            self.consumers.clear()
            self.unacked.clear()
        return consumers

    # -- what the connection's delivery calls use ---------------------------------------------

    def room_for(self, consumer: Consumer, shared: dict[Consuming, int]) -> int:
        """How many more deliveries ``consumer`` may take now (its prefetch allowance).

        With a channel-wide (``a_global``) limit, the channel's allowance is
        split between its consumers; ``shared`` counts, per channel, the
        consumers already served in this delivery call.
        """
        served = shared.get(self, 0)
        if self.prefetch_global and self.prefetch_count and not consumer.no_ack:
            shared[self] = served + 1  # this consumer takes one of the channel's shares
        return allowance(
            self.prefetch_count, self.prefetch_global, self.connection.settings.max_batch,
            no_ack=consumer.no_ack, held=consumer.unacked, channel_unacked=len(self.unacked),
            consumers=len(self.consumers), served=served,
        )  # fmt: skip

    def deliver(self, consumer: Consumer, tag: int, item: bytes) -> tuple[bool, Handoff | None]:
        """Record one message a delivery call took for ``consumer`` (connection lock held).

        Returns whether it was kept -- False when the consumer was cancelled
        meanwhile, or its channel closed (which drops every consumer): an
        acked-mode message must then be put back -- and the callback call for
        the connection to make once it let go of the lock.
        """
        self.next_tag = max(self.next_tag, tag + 1)
        if self.consumers.get(consumer.tag) is not consumer:
            return consumer.no_ack, None
        if not consumer.no_ack:
            self.unacked[tag] = consumer
            consumer.unacked += 1
        if consumer.callback is None:
            return True, None
        return True, (consumer, Message.delivered(item, self.channel, tag, consumer.tag))

    def hand_over(self, consumer: Consumer, message: Message) -> None:
        """Call ``consumer``'s callback with a message :meth:`deliver` recorded (no lock held).

        A consumer cancelled (or a channel closed) since, by an earlier
        callback or another thread, does not get it: it goes back to its queue.
        """
        with self.connection.lock:
            if self.consumers.get(consumer.tag) is not consumer:
                tag = message.delivery_tag
                if self.unacked.pop(tag, None) is not None:
                    consumer.unacked -= 1
                    self.put_back([tag])
                return
        callback = consumer.callback
        if callback is not None:
            callback(message)

    def put_back(self, tags: list[int]) -> None:
        """Requeue deliveries taken for a consumer that is gone."""
        if self.channel.is_open:
            self.connection.call("settle", self.uid, "requeue", *tags)

    def queue_gone(self, consumer: Consumer) -> None:
        """The consumer's queue was deleted: cancel it and tell its ``on_cancel``."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        self.connection.remove_consumer(consumer)
        if consumer.on_cancel is not None:
            consumer.on_cancel(consumer.tag)

    # -- settling ---------------------------------------------------------------------------

    def _settle(self, delivery_tag: int, multiple: bool, mode: str) -> None:
        if not self.channel.is_open:
            raise self.channel.closed_error()
        unacked = self.unacked
        tags = settled_tags(unacked, delivery_tag, multiple)
        if tags is None:
            self.channel.fail(precondition(f"unknown delivery tag {delivery_tag}"))
        for tag in tags:
            consumer = unacked.pop(tag)
            if consumer is not None:
                consumer.unacked -= 1
        if not tags:
            return
        connection = self.connection
        if mode == "ack" and len(tags) == 1:
            found = connection.hdel(f"u:{self.uid}", tags[0])
        else:
            found = connection.call("settle", self.uid, mode, *tags)
        if found != len(tags):
            raise connection.lease_lost()
        connection.wake()  # room for more deliveries

    def __repr__(self) -> str:
        return (
            f"<redis Consuming {self.uid} consumers={len(self.consumers)} "
            f"unacked={len(self.unacked)} prefetch={self.prefetch_count}>"
        )
