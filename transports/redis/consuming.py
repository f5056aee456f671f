"""Consuming on a Redis channel: gets, consumers, prefetch, acks and requeues.

The consuming half of :class:`~transports.redis.channel.RedisChannel`. A
channel keeps the delivery tags it handed out and which consumer holds each
unacked one; Redis keeps the messages themselves (in the channel's unacked
hash) until they are acked, rejected or put back.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from broker.errors import BrokerError, ChannelError, ConfigurationError, IrrecoverableChannelError
from transports import base
from transports._shared.replies import not_implemented, precondition
from transports.redis.message import Message

if TYPE_CHECKING:
    from transports.redis.connection import RedisConnection

__all__ = ["Consumer", "ConsumingMixin", "flag"]


class Consumer:
    """One ``basic_consume`` of a channel."""

    __slots__ = ("callback", "channel", "no_ack", "on_cancel", "queue", "tag", "unacked")

    def __init__(
        self,
        channel: ConsumingMixin,
        queue: str,
        tag: str,
        no_ack: bool,
        callback: base.MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.callback = callback
        self.on_cancel = on_cancel
        self.unacked = 0

    def __repr__(self) -> str:
        return f"<redis Consumer {self.tag!r} queue={self.queue!r} unacked={self.unacked}>"


def flag(value: bool) -> int:
    """A boolean argument as the broker script reads it."""
    return 1 if value else 0


class ConsumingMixin:
    """``basic_get``, ``basic_consume`` and settling, for :class:`RedisChannel`."""

    connection: RedisConnection
    uid: str
    next_tag: int
    prefetch_count: int
    prefetch_global: bool
    consumers: dict[str, Consumer]
    # delivery tag -> the consumer holding it (None for basic_get)
    unacked: dict[int, Consumer | None]
    _open: bool

    if TYPE_CHECKING:  # provided by RedisChannel

        @property
        def is_open(self) -> bool: ...

        def _call(self, op: str, *args: Any) -> Any: ...

        def _fail(self, exc: ChannelError) -> NoReturn: ...

        def _closed_error(self) -> BrokerError: ...

    def basic_get(self, queue: str = "", no_ack: bool = False) -> Message | None:
        """Take the next ready message, or return ``None`` when the queue is empty."""
        tag = self.next_tag
        found = self._call("get", queue, self.uid, tag, flag(no_ack), self.connection.uid,
                           self.connection.settings.lease_ms)  # fmt: skip
        if not found:
            return None
        self.next_tag = tag + 1
        if not no_ack:
            self.unacked[tag] = None
        return Message.delivered(found[0], self, tag, message_count=int(found[1]))

    def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        nowait: bool = False,
        callback: base.MessageCallback | None = None,
        arguments: Mapping[str, Any] | None = None,
        on_cancel: Callable[[str], None] | None = None,
    ) -> str:
        """Start a consumer; its callback runs in the connection's ``drain_events``."""
        tag = consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        if tag in self.consumers:
            reuse = f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            self._fail(IrrecoverableChannelError(reuse, reply_code=530))
        self._call("consume", self.connection.uid, self.uid, queue, tag, flag(exclusive))
        consumer = Consumer(self, queue, tag, no_ack, callback, on_cancel)
        self.consumers[tag] = consumer
        self.connection.add_consumer(consumer)
        return tag

    def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer; what it holds unacked stays unacked on this channel."""
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is None:
            return
        self.connection.remove_consumer(consumer)
        self._call("cancel", self.connection.uid, self.uid, consumer.queue, consumer.tag)

    def room_for(self, consumer: Consumer, shared: dict[ConsumingMixin, int]) -> int:
        """How many more deliveries ``consumer`` may take now (its prefetch allowance).

        With a channel-wide (``a_global``) limit, the channel's allowance is
        split between its consumers; ``shared`` counts, per channel, the
        consumers already served in this delivery call.
        """
        limit = self.prefetch_count
        batch = self.connection.settings.max_batch
        if not limit or consumer.no_ack:
            return batch
        if not self.prefetch_global:
            return min(batch, limit - consumer.unacked)
        served = shared.get(self, 0)
        shared[self] = served + 1
        count = len(self.consumers)
        available = max(0, limit - len(self.unacked))
        share = available // count + (1 if served < available % count else 0)
        return min(batch, share)

    def deliver(self, consumer: Consumer, tag: int, item: bytes) -> bool:
        """Hand ``consumer`` one message a delivery call took for it.

        Returns False when the consumer was cancelled (or the channel closed)
        meanwhile: an acked-mode message must then be put back.
        """
        self.next_tag = max(self.next_tag, tag + 1)
        if self.consumers.get(consumer.tag) is not consumer or not self._open:
            return consumer.no_ack
        if not consumer.no_ack:
            self.unacked[tag] = consumer
            consumer.unacked += 1
        if consumer.callback is not None:
            consumer.callback(Message.delivered(item, self, tag, consumer.tag))
        return True

    def put_back(self, tags: list[int]) -> None:
        """Requeue deliveries taken for a consumer that is gone."""
        if self.is_open:
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
        if not self.is_open:
            raise self._closed_error()
        unacked = self.unacked
        if multiple:
            tags = [t for t in unacked if t <= delivery_tag or delivery_tag == 0]
        elif delivery_tag in unacked:
            tags = [delivery_tag]
        else:
            tags = []
        if not tags and not (multiple and delivery_tag == 0):
            self._fail(precondition(f"unknown delivery tag {delivery_tag}"))
        for tag in tags:
            consumer = unacked.pop(tag)
            if consumer is not None:
                consumer.unacked -= 1
        if not tags:
            return
        if mode == "ack" and len(tags) == 1:
            found = self.connection.hdel(f"u:{self.uid}", tags[0])
        else:
            found = self.connection.call("settle", self.uid, mode, *tags)
        if found != len(tags):
            raise self.connection.lease_lost()
        self.connection.wake()  # room for more deliveries

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery, or every one up to ``delivery_tag``."""
        self._settle(delivery_tag, multiple, "ack")

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery, returning it to its queue when ``requeue``."""
        self._settle(delivery_tag, False, "requeue" if requeue else "drop")

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Reject one delivery, or every one up to ``delivery_tag``."""
        self._settle(delivery_tag, multiple, "requeue" if requeue else "drop")

    def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacked pushed deliveries: per consumer, or per channel if ``a_global``."""
        if prefetch_size:
            self._fail(not_implemented(f"prefetch_size!=0 ({prefetch_size})"))
        if isinstance(prefetch_count, bool) or not isinstance(prefetch_count, int):
            raise ConfigurationError(f"prefetch_count must be an integer, got {prefetch_count!r}")
        if not 0 <= prefetch_count <= 65535:
            raise ConfigurationError(f"prefetch_count must be in 0..65535, got {prefetch_count}")
        self.prefetch_count = prefetch_count
        self.prefetch_global = a_global
        self.connection.wake()

    def basic_recover(self, requeue: bool = False) -> None:
        """Return every unacked message to its queue (always requeued here)."""
        self._call("recover", self.uid)
        self.connection.wake()
        for consumer in self.unacked.values():
            if consumer is not None:
                consumer.unacked -= 1
        self.unacked.clear()
