"""Channels of the asyncio Redis transport: py-amqp's methods as coroutines, on the same script.

The asyncio sibling of :class:`transports.redis.channel.RedisChannel`: the
same script operations with the same arguments, the same checks
(:func:`~transports.redis.channel.check_name`, the publish limits of
:mod:`transports._shared.validation`), the same stored message format
(:mod:`transports.redis.message`) and the same channel errors, which close
the channel and return its unacked messages to their queues. What it needs
of its connection is :class:`ChannelHost`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn, Protocol

from broker.errors import BrokerConnectionError, ChannelError, RecoverableChannelError
from transports import base
from transports._shared.properties import coerce_body
from transports._shared.replies import (
    channel_closed,
    check_exchange_type,
    not_implemented,
    precondition,
)
from transports._shared.validation import check_properties, check_route
from transports.redis.aio.consuming import AsyncConsumer, AsyncConsuming, ConsumingHost
from transports.redis.aio.link import Orphan
from transports.redis.channel import canonical_arguments, check_name
from transports.redis.consuming import flag
from transports.redis.message import Message, encode, headers_json

__all__ = ["AsyncRedisChannel", "ChannelHost"]

#: The highest ``x-max-priority`` a queue may have (as on RabbitMQ and the synchronous side).
MAX_PRIORITY = 255


class ChannelHost(ConsumingHost, Protocol):
    """What a channel needs of the connection it was opened on."""

    @property
    def is_open(self) -> bool:
        """True until the connection is closed or found dead."""
        ...

    def closed_error(self) -> BrokerConnectionError:
        """What a call on the closed connection raises."""
        ...

    def forget_channel(self, channel_id: int) -> None:
        """The channel is closed: stop counting it among the connection's channels."""
        ...

    async def replicate(self) -> None:
        """Wait until the writes so far reached the replicas ``min_replicas`` asks for.

        Raises ``ConfirmTimeout`` when fewer acknowledged them in time.
        """
        ...


class AsyncRedisChannel:
    """A channel on an :class:`~transports.redis.aio.connection.AsyncRedisConnection`.

    Implements :class:`transports.base_aio.AsyncConfirmingChannel`: a publish
    is confirmed when the broker script returns -- in confirm mode, and when
    the master has replicas (or ``min_replicas`` says so), once they
    acknowledged it too (``WAIT``).

    Attributes:
        on_return: called as ``on_return(reply_code, reply_text, exchange,
            routing_key, message)`` for an unroutable ``mandatory`` message,
            before :meth:`basic_publish` returns.
        confirm_listener: kept for whoever tracks this channel's confirms; never
            called, since every publish is confirmed when it returns.
    """

    def __init__(
        self, connection: ChannelHost, channel_id: int, owner: object | None = None
    ) -> None:
        self.connection = connection
        self.channel_id = channel_id
        self.uid = f"{connection.uid}.{channel_id}"
        self.owner = owner
        self.on_return: base.ReturnCallback | None = None
        self.confirm_listener: base.ConfirmListener | None = None
        self._consuming = AsyncConsuming(self, connection)
        self._open = True
        self._why: str | None = None
        self._confirming = False

    # -- state ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until this channel or its connection is closed."""
        return self._open and self.connection.is_open

    @property
    def consumers(self) -> Mapping[str, AsyncConsumer]:
        """This channel's consumers by tag (a read-only view)."""
        return MappingProxyType(self._consuming.consumers)

    @property
    def confirms_synchronously(self) -> bool:
        """True: a publish is confirmed when :meth:`basic_publish` returns."""
        return True

    async def call(self, op: str, *args: Any, orphan: Orphan | None = None) -> Any:
        """Run one broker-script operation for this channel.

        Raises:
            broker.errors.ChannelError: the broker refused it; the channel is
                closed first, as an AMQP channel exception closes it.
            broker.errors.RecoverableChannelError: the channel is closed.
            broker.errors.BrokerConnectionError: the connection is closed or broke.
        """
        if not self.is_open:
            raise self.closed_error()
        try:
            return await self.connection.call(op, *args, orphan=orphan)
        except ChannelError as exc:
            await self.fail(exc)

    async def fail(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it."""
        self._why = str(exc)
        await self.close()
        raise exc

    def closed_error(self) -> BrokerConnectionError | RecoverableChannelError:
        """What a call on this closed channel raises (the connection's error if it is gone)."""
        if not self.connection.is_open:
            return self.connection.closed_error()
        return channel_closed(self.channel_id, self._why)

    async def close(self) -> None:
        """Cancel this channel's consumers and put its unacked messages back."""
        if not self._open:
            return
        consumers = self._consuming.clear()
        self.forget()
        pairs: list[str] = []
        for consumer in consumers:
            await self.connection.remove_consumer(consumer)
            pairs += [consumer.queue, consumer.tag]
        if self.connection.is_open:
            await self.connection.call("close_channel", self.connection.uid, self.uid, *pairs)

    def forget(self) -> None:
        """Drop local state only (the connection is gone; its lease cleans up in Redis)."""
        self._open = False
        self._consuming.clear()
        self.connection.forget_channel(self.channel_id)

    # -- exchanges ----------------------------------------------------------------------

    async def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Declare an exchange (``passive``: only check that it exists)."""
        check_name("exchange", exchange)
        if not passive:
            check_exchange_type(type, exchange, "redis")
        alternate = (arguments or {}).get("alternate-exchange") or ""
        await self.call("exchange_declare", exchange, type, flag(passive), flag(durable),
                        flag(auto_delete), str(alternate))  # fmt: skip

    async def exchange_delete(
        self, exchange: str, if_unused: bool = False, nowait: bool = False
    ) -> None:
        """Delete an exchange and its bindings."""
        await self.call("exchange_delete", exchange, flag(if_unused))

    async def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Route what ``source`` takes by this binding on through ``destination``."""
        check_name("exchange", destination)
        await self._bind("x", destination, source, routing_key, arguments)

    async def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange binding."""
        await self._unbind("x", destination, source, routing_key, arguments)

    async def _bind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        check_name("exchange", source)
        mode = str((arguments or {}).get("x-match", ""))
        await self.call("bind", kind, dest, source, key, canonical_arguments(arguments), mode,
                        self.connection.uid)  # fmt: skip

    async def _unbind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        await self.call("unbind", kind, dest, source, key, canonical_arguments(arguments),
                        self.connection.uid)  # fmt: skip

    # -- queues -------------------------------------------------------------------------

    async def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> base.QueueDeclareOk | None:
        """Declare a queue; ``queue=''`` gets a server-named one."""
        check_name("queue", queue)
        generated = not queue and not passive
        name = "amq.gen-" + secrets.token_urlsafe(16) if generated else queue
        x_args = {k: v for k, v in (arguments or {}).items() if k.startswith("x-")}
        priority = x_args.get("x-max-priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            priority = -1
        if not 0 <= priority <= MAX_PRIORITY:
            await self.fail(precondition(f"invalid arg 'x-max-priority' for queue '{name}': "
                                         f"{x_args['x-max-priority']!r} is not an integer "
                                         f"in 0..{MAX_PRIORITY}"))  # fmt: skip
        name_b, messages, consumers = await self.call(
            "queue_declare", name, flag(passive), flag(durable), flag(exclusive),
            flag(auto_delete), canonical_arguments(x_args), priority, flag(generated),
            self.connection.uid,
        )  # fmt: skip
        ok = base.QueueDeclareOk(name_b.decode(), int(messages), int(consumers))
        return None if nowait else ok

    async def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        check_name("queue", queue)
        await self._bind("q", queue, exchange, routing_key, arguments)

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a binding."""
        await self._unbind("q", queue, exchange, routing_key, arguments)

    async def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        """Drop a queue's ready messages; return how many."""
        return int(await self.call("queue_purge", queue, self.connection.uid))

    async def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        """Delete a queue; return how many ready messages it held."""
        count = await self.call("queue_delete", queue, flag(if_unused), flag(if_empty),
                                self.connection.uid)  # fmt: skip
        return int(count)

    # -- publishing -------------------------------------------------------------------------

    def prepare_message(self, body: bytes, **properties: Any) -> Message:
        """Build a message for :meth:`basic_publish` (no I/O).

        Raises:
            broker.errors.ConfigurationError: a property or header RabbitMQ
                would refuse (see :mod:`transports._shared.validation`).
        """
        check_properties(properties)
        return Message(body, **properties)

    async def confirm_select(self, nowait: bool = False) -> None:
        """From now on a publish returns once stored, and copied to the replicas asked for."""
        self._confirming = True

    async def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Route and store a message; an unroutable ``mandatory`` one goes to ``on_return``.

        Returns once Redis ran the publish: the message is stored (or was
        returned). A cancelled publish either was stored whole or not at all.
        In confirm mode a stored message is also waited for on the replicas
        (see :meth:`~transports.redis.aio.connection.AsyncRedisConnection.replicate`).

        Raises:
            broker.errors.ConfigurationError: ``exchange`` or ``routing_key`` is
                not a str of at most 255 bytes; nothing was stored.
            broker.errors.ConfirmTimeout: in confirm mode, too few replicas
                acknowledged the message in time (it is on the master only).
        """
        check_route(exchange, routing_key)
        if immediate:
            await self.fail(not_implemented("immediate=true"))
        properties = dict(getattr(msg, "properties", None) or {})
        body = msg.body if type(msg.body) is bytes else coerce_body(msg.body, properties)
        item = encode(body, properties, exchange, routing_key)
        routed = await self.call("publish", exchange, routing_key, item,
                                 headers_json(properties),
                                 properties.get("priority") or 0)  # fmt: skip
        if routed and self._confirming:
            await self.connection.replicate()
        if not routed and mandatory and self.on_return is not None:
            returned = Message(body, **properties)
            returned.channel = self
            returned.delivery_info = {"exchange": exchange, "routing_key": routing_key}
            self.on_return(312, "NO_ROUTE", exchange, routing_key, returned)

    # -- consuming (see transports.redis.aio.consuming) ----------------------------------------

    async def basic_get(self, queue: str = "", no_ack: bool = False) -> Message | None:
        """Take the next ready message, or return ``None`` when the queue is empty.

        A caller cancelled while the reply is on its way gives the message back.
        """
        return await self._consuming.get(queue, no_ack)

    async def basic_consume(
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
        """Start a consumer; its callback runs on the connection's event loop."""
        return await self._consuming.consume(
            queue, consumer_tag, no_ack, exclusive, callback, on_cancel
        )

    async def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer; what it holds unacked stays unacked on this channel."""
        await self._consuming.cancel(consumer_tag)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery, or every one up to ``delivery_tag``."""
        await self._consuming.ack(delivery_tag, multiple)

    async def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery, returning it to its queue when ``requeue``."""
        await self._consuming.reject(delivery_tag, False, requeue)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject one delivery, or every one up to ``delivery_tag``."""
        await self._consuming.reject(delivery_tag, multiple, requeue)

    async def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacked pushed deliveries: per consumer, or per channel if ``a_global``."""
        await self._consuming.qos(prefetch_size, prefetch_count, a_global)

    async def basic_recover(self, requeue: bool = False) -> None:
        """Return every unacked message to its queue (always requeued here)."""
        await self._consuming.recover()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        consuming = self._consuming
        return (
            f"<AsyncRedisChannel {self.channel_id} {state} consumers={len(consuming.consumers)} "
            f"unacked={len(consuming.unacked)} prefetch={consuming.prefetch_count}>"
        )
