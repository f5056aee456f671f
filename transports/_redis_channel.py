"""Channels of the Redis transport: py-amqp's methods, kept in Redis by the broker script.

A channel keeps its own bookkeeping (delivery tags, which consumer holds
which unacked delivery, prefetch) and asks the script for everything else.
Broker-side failures raise the same :class:`~broker.errors.ChannelError`
subclasses, codes and texts as RabbitMQ and close the channel, which returns
its unacked messages to their queues.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Self

from broker.errors import (
    BrokerConnectionError,
    ChannelError,
    ConfigurationError,
    IrrecoverableChannelError,
    RecoverableChannelError,
)
from transports import base
from transports._properties import coerce_body
from transports._redis_message import Message, encode, headers_json
from transports._replies import not_implemented, precondition

if TYPE_CHECKING:
    from transports.redis import RedisConnection

__all__ = ["EXCHANGE_TYPES", "Consumer", "RedisChannel"]

EXCHANGE_TYPES = frozenset({"direct", "topic", "fanout", "headers"})
_MAX_PRIORITY = 255


class Consumer:
    """One ``basic_consume`` of a channel."""

    __slots__ = ("callback", "channel", "no_ack", "on_cancel", "queue", "tag", "unacked")

    def __init__(
        self,
        channel: RedisChannel,
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


def _canonical(arguments: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(arguments or {}), sort_keys=True, separators=(",", ":"), default=str)


def _flag(value: bool) -> int:
    return 1 if value else 0


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or "\x00" in name:
        raise ConfigurationError(f"{kind} name must be a string without NUL, got {name!r}")


class RedisChannel:
    """A channel on a :class:`~transports.redis.RedisConnection`.

    Attributes:
        on_return: called as ``on_return(reply_code, reply_text, exchange,
            routing_key, message)`` for an unroutable ``mandatory`` message,
            before :meth:`basic_publish` returns.
    """

    def __init__(self, connection: RedisConnection, channel_id: int) -> None:
        self.connection = connection
        self.channel_id = channel_id
        self.uid = f"{connection.uid}.{channel_id}"
        self.client: Any = None
        self.on_return: Callable[..., None] | None = None
        self.next_tag = 1
        self.prefetch_count = 0
        self.prefetch_global = False
        self.consumers: dict[str, Consumer] = {}
        # delivery tag -> the consumer holding it (None for basic_get)
        self.unacked: dict[int, Consumer | None] = {}
        self._open = True
        self._why: str | None = None

    # -- state ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open and self.connection.is_open

    def _call(self, op: str, *args: Any) -> Any:
        if not self.is_open:
            raise self._closed_error()
        try:
            return self.connection.call(op, *args)
        except ChannelError as exc:
            self._fail(exc)

    def _fail(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it."""
        self._why = str(exc)
        self.close()
        raise exc

    def _closed_error(self) -> BrokerConnectionError | RecoverableChannelError:
        if not self.connection.is_open:
            return self.connection.closed_error()
        why = f" ({self._why})" if self._why else ""
        return RecoverableChannelError(
            f"channel {self.channel_id} is closed{why}; open a new channel", reply_code=504
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel this channel's consumers and put its unacked messages back."""
        if not self._open:
            return
        self._open = False
        pairs: list[str] = []
        for consumer in self.consumers.values():
            pairs += [consumer.queue, consumer.tag]
        consumers = list(self.consumers.values())
        self.forget()
        for consumer in consumers:
            self.connection.remove_consumer(consumer)
        if self.connection.is_open:
            self.connection.call("close_channel", self.connection.uid, self.uid, *pairs)

    def forget(self) -> None:
        """Drop local state only (the connection is gone; its lease cleans up in Redis)."""
        self._open = False
        self.consumers.clear()
        self.unacked.clear()
        self.connection.channels.pop(self.channel_id, None)

    # -- exchanges ----------------------------------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        _check_name("exchange", exchange)
        if not passive and type not in EXCHANGE_TYPES:
            raise ConfigurationError(
                f"exchange type {type!r} is not supported by the redis transport; "
                f"use one of {', '.join(sorted(EXCHANGE_TYPES))}"
            )
        alternate = (arguments or {}).get("alternate-exchange") or ""
        self._call("exchange_declare", exchange, type, _flag(passive), _flag(durable),
                   _flag(auto_delete), str(alternate))  # fmt: skip

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        self._call("exchange_delete", exchange, _flag(if_unused))

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        _check_name("exchange", destination)
        self._bind("x", destination, source, routing_key, arguments)

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._unbind("x", destination, source, routing_key, arguments)

    def _bind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        _check_name("exchange", source)
        mode = str((arguments or {}).get("x-match", ""))
        self._call("bind", kind, dest, source, key, _canonical(arguments), mode,
                   self.connection.uid)  # fmt: skip

    def _unbind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        self._call("unbind", kind, dest, source, key, _canonical(arguments), self.connection.uid)

    # -- queues -------------------------------------------------------------------------

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> base.QueueDeclareOk | None:
        _check_name("queue", queue)
        generated = not queue and not passive
        name = "amq.gen-" + secrets.token_urlsafe(16) if generated else queue
        x_args = {k: v for k, v in (arguments or {}).items() if k.startswith("x-")}
        priority = x_args.get("x-max-priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            priority = -1
        if not 0 <= priority <= _MAX_PRIORITY:
            self._fail(precondition(f"invalid arg 'x-max-priority' for queue '{name}': "
                                    f"{x_args['x-max-priority']!r} is not an integer "
                                    f"in 0..{_MAX_PRIORITY}"))  # fmt: skip
        name_b, messages, consumers = self._call(
            "queue_declare", name, _flag(passive), _flag(durable), _flag(exclusive),
            _flag(auto_delete), _canonical(x_args), priority, _flag(generated),
            self.connection.uid,
        )  # fmt: skip
        ok = base.QueueDeclareOk(name_b.decode(), int(messages), int(consumers))
        return None if nowait else ok

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        _check_name("queue", queue)
        self._bind("q", queue, exchange, routing_key, arguments)

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._unbind("q", queue, exchange, routing_key, arguments)

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        return int(self._call("queue_purge", queue, self.connection.uid))

    def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        count = self._call("queue_delete", queue, _flag(if_unused), _flag(if_empty),
                           self.connection.uid)  # fmt: skip
        return int(count)

    # -- publishing -------------------------------------------------------------------------

    def prepare_message(self, body: bytes, **properties: Any) -> Message:
        return Message(body, **properties)

    def confirm_select(self, nowait: bool = False) -> None:
        """Accepted for compatibility: a publish is confirmed when the script returns."""

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Route and store a message; an unroutable ``mandatory`` one goes to ``on_return``."""
        if immediate:
            self._fail(not_implemented("immediate=true"))
        properties = dict(getattr(msg, "properties", None) or {})
        body = msg.body if type(msg.body) is bytes else coerce_body(msg.body, properties)
        item = encode(body, properties, exchange, routing_key)
        priority = properties.get("priority") or 0
        routed = self._call("publish", exchange, routing_key, item, headers_json(properties),
                            priority if isinstance(priority, int) else 0)  # fmt: skip
        if not routed and mandatory and self.on_return is not None:
            returned = Message(body, **properties)
            returned.channel = self
            returned.delivery_info = {"exchange": exchange, "routing_key": routing_key}
            self.on_return(312, "NO_ROUTE", exchange, routing_key, returned)

    # -- consuming ------------------------------------------------------------------------

    def basic_get(self, queue: str = "", no_ack: bool = False) -> Message | None:
        """Take the next ready message, or return ``None`` when the queue is empty."""
        tag = self.next_tag
        found = self._call("get", queue, self.uid, tag, _flag(no_ack), self.connection.uid,
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
        self._call("consume", self.connection.uid, self.uid, queue, tag, _flag(exclusive))
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

    def room_for(self, consumer: Consumer, shared: dict[RedisChannel, int]) -> int:
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

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return (
            f"<RedisChannel {self.channel_id} {state} consumers={len(self.consumers)} "
            f"unacked={len(self.unacked)} prefetch={self.prefetch_count}>"
        )
