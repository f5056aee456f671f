"""Exchanges, queues and bindings, with kombu's names and defaults.

``Queue('q', Exchange('x'), 'rk')`` reads as it does in kombu. An entity is
*bound* to a channel by calling it (``queue(channel)`` returns a bound copy;
a :class:`broker.Connection` may be passed instead, meaning its default
channel). Bound entities declare, bind, purge and delete themselves.

Declarations made through a channel that belongs to a :class:`broker.Connection`
are remembered twice:

* in ``connection.declared_entities``, so :func:`maybe_declare` does not repeat
  them on the same connection (the set is cleared on reconnect). Auto-delete
  and expiring entities are never cached: they can vanish behind our back.
* in ``connection.topology`` (:class:`broker.topology.Topology`), so they are
  declared again after a reconnect -- unless ``no_declare=True`` or
  ``recover=False`` was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from broker.entity_base import (
    PERSISTENT,
    TRANSIENT,
    Entity,
    bound_channel,
    client_of,
    maybe_declare,
    normalize_delivery_mode,
)
from broker.entity_base import freeze as _freeze
from broker.entity_base import queue_arguments as _queue_arguments
from broker.errors import ConfigurationError

if TYPE_CHECKING:
    from broker.message import Message
    from transports.base import Channel, QueueDeclareOk

__all__ = [
    "PERSISTENT",
    "TRANSIENT",
    "Exchange",
    "Queue",
    "binding",
    "bound_channel",
    "client_of",
    "maybe_declare",
    "normalize_delivery_mode",
]


class Exchange(Entity):
    """An AMQP exchange.

    Args:
        name: the exchange name; ``''`` is the default exchange (never declared).
        type: ``direct``, ``topic``, ``fanout``, ``headers`` or a plugin type.
        channel: a channel or connection to bind to.
        durable: survive a broker restart.
        auto_delete: delete when the last queue is unbound.
        delivery_mode: default for messages published to it (1/``'transient'``
            or 2/``'persistent'``); ``None`` means persistent when durable.
        arguments: extra declare arguments.
        no_declare: never declare (it exists already); also not recorded.
        passive: declare only checks that the exchange exists.
        recover: record the exchange for replay after a reconnect.
    """

    def __init__(
        self,
        name: str = "",
        type: str = "direct",
        channel: Any = None,
        durable: bool = True,
        auto_delete: bool = False,
        delivery_mode: int | str | None = None,
        arguments: Mapping[str, Any] | None = None,
        no_declare: bool = False,
        passive: bool = False,
        recover: bool = True,
    ) -> None:
        if not isinstance(name, str):
            raise ConfigurationError(f"exchange name must be a str, got {name!r}")
        if not type or not isinstance(type, str):
            raise ConfigurationError(f"exchange type must be a non-empty str, got {type!r}")
        self.name = name
        self.type = type
        self.durable = bool(durable)
        self.auto_delete = bool(auto_delete)
        self.delivery_mode = normalize_delivery_mode(delivery_mode)
        self.arguments = dict(arguments) if arguments else None
        self.no_declare = bool(no_declare)
        self.passive = bool(passive)
        self.recover = bool(recover)
        if channel is not None:
            self.revive(channel)

    @property
    def default_delivery_mode(self) -> int:
        """The delivery mode used when a publish does not give one."""
        if self.delivery_mode is not None:
            return self.delivery_mode
        return PERSISTENT if self.durable else TRANSIENT

    @property
    def declaration_key(self) -> tuple[Any, ...]:
        """What identifies this declaration in ``connection.declared_entities``."""
        return (
            "exchange",
            self.name,
            self.type,
            self.durable,
            self.auto_delete,
            _freeze(self.arguments),
        )

    @property
    def can_cache_declaration(self) -> bool:
        """Auto-delete exchanges may vanish, so they are declared every time."""
        return not self.auto_delete

    def declare(
        self, nowait: bool = False, passive: bool | None = None, channel: Channel | None = None
    ) -> None:
        """Declare the exchange (or, when passive, check that it exists).

        The default exchange ``''`` and ``no_declare`` exchanges are skipped.
        """
        if self.no_declare or not self.name:
            return
        passive = self.passive if passive is None else passive
        chan, client = self._target(channel)
        chan.exchange_declare(
            exchange=self.name,
            type=self.type,
            passive=passive,
            durable=self.durable,
            auto_delete=self.auto_delete,
            nowait=nowait,
            arguments=self.arguments,
        )
        if client is not None and not passive:
            self._note_declared(client)
            if self.recover:
                client.topology.record_exchange(self)

    def delete(self, if_unused: bool = False, nowait: bool = False) -> None:
        """Delete the exchange and forget it for recovery."""
        chan, client = self._target(None)
        chan.exchange_delete(exchange=self.name, if_unused=if_unused, nowait=nowait)
        if client is not None:
            self._forget_declared(client)
            client.topology.forget_exchange(self)

    def binding(self, routing_key: str = "", arguments: Mapping[str, Any] | None = None) -> binding:
        """A :class:`binding` from this exchange, for ``Queue(bindings=[...])``."""
        return binding(self, routing_key, arguments)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Exchange):
            return NotImplemented
        return self.declaration_key == other.declaration_key and (
            self.delivery_mode == other.delivery_mode
        )

    def __hash__(self) -> int:
        return hash(("E", self.name))

    def __repr__(self) -> str:
        where = f" bound to chan:{self._channel.channel_id}" if self._channel is not None else ""
        return f"<Exchange {self.name!r}({self.type}){where}>"


class binding:  # kombu's name, lower case
    """One binding of a queue to an exchange, for ``Queue(bindings=[...])``.

    Args:
        exchange: the exchange (declared with the queue unless ``no_declare``).
        routing_key: the binding key.
        arguments: binding arguments (e.g. for headers exchanges).
    """

    def __init__(
        self,
        exchange: Exchange | str | None = None,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.exchange = Exchange(exchange) if isinstance(exchange, str) else exchange
        self.routing_key = routing_key
        self.arguments = dict(arguments) if arguments else None

    @property
    def exchange_name(self) -> str:
        """The exchange's name (``''`` when none)."""
        return self.exchange.name if self.exchange is not None else ""

    def declare(self, channel: Channel, nowait: bool = False) -> None:
        """Declare the binding's exchange."""
        if self.exchange is not None:
            self.exchange.declare(nowait=nowait, channel=channel)

    def bind(self, entity: Queue, nowait: bool = False, channel: Channel | None = None) -> None:
        """Bind ``entity`` (a queue) with this binding."""
        entity.bind_to(
            self.exchange_name, self.routing_key, self.arguments, nowait=nowait, channel=channel
        )

    def unbind(self, entity: Queue, nowait: bool = False, channel: Channel | None = None) -> None:
        """Remove this binding from ``entity``."""
        entity.unbind_from(
            self.exchange_name, self.routing_key, self.arguments, nowait=nowait, channel=channel
        )

    @property
    def key(self) -> tuple[Any, ...]:
        """Hashable identity of the binding."""
        ex = self.exchange.declaration_key if self.exchange is not None else None
        return (ex, self.routing_key, _freeze(self.arguments))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, binding):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"<binding: {self.exchange_name!r} -> {self.routing_key!r}>"


class Queue(Entity):
    """An AMQP queue and its binding(s).

    Args:
        name: the queue name; ``''`` lets the broker choose one when declared
            (written back into :attr:`name`; see :attr:`server_named`).
        exchange: an :class:`Exchange`, an exchange name, or a list of
            :class:`binding`; ``None`` means the default exchange (no binding).
        routing_key: the binding key for ``exchange``.
        channel: a channel or connection to bind to.
        durable, exclusive, auto_delete: the usual flags (exclusive implies
            auto_delete, as in kombu).
        queue_arguments: extra ``queue_declare`` arguments.
        binding_arguments: arguments of the main binding.
        consumer_arguments: arguments for ``basic_consume``.
        bindings: additional :class:`binding` objects.
        message_ttl, expires: seconds (sent as ``x-message-ttl``/``x-expires`` ms).
        max_length, max_length_bytes, max_priority: the ``x-`` queue limits.
        no_declare: never declare this queue, its exchange or bindings.
        no_ack: default ``no_ack`` for consumers of this queue.
        on_declared: called with ``(name, message_count, consumer_count)``.
        recover: record the queue and its bindings for replay after reconnect.
    """

    def __init__(
        self,
        name: str = "",
        exchange: Exchange | str | Iterable[binding] | None = None,
        routing_key: str = "",
        channel: Any = None,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        queue_arguments: Mapping[str, Any] | None = None,
        binding_arguments: Mapping[str, Any] | None = None,
        consumer_arguments: Mapping[str, Any] | None = None,
        bindings: Iterable[binding] | None = None,
        message_ttl: float | None = None,
        expires: float | None = None,
        max_length: int | None = None,
        max_length_bytes: int | None = None,
        max_priority: int | None = None,
        no_declare: bool = False,
        no_ack: bool = False,
        alias: str | None = None,
        on_declared: Any = None,
        recover: bool = True,
    ) -> None:
        if not isinstance(name, str):
            raise ConfigurationError(f"queue name must be a str, got {name!r}")
        self.name = name
        self.server_named = not name
        self.bindings: list[binding] = list(bindings or ())
        self.exchange: Exchange | None
        if isinstance(exchange, str):
            self.exchange = Exchange(exchange)
        elif isinstance(exchange, Exchange) or exchange is None:
            self.exchange = exchange if exchange is not None else Exchange("")
        else:  # Queue('q', [binding(...), ...])
            self.bindings.extend(exchange)
            self.exchange = None
        if self.bindings and self.exchange is not None and not self.exchange.name:
            self.exchange = None
        self.routing_key = routing_key
        self.durable = bool(durable)
        self.exclusive = bool(exclusive)
        self.auto_delete = bool(auto_delete) or self.exclusive
        self.binding_arguments = dict(binding_arguments) if binding_arguments else None
        self.consumer_arguments = dict(consumer_arguments) if consumer_arguments else None
        self.message_ttl = message_ttl
        self.expires = expires
        self.max_length = max_length
        self.max_length_bytes = max_length_bytes
        self.max_priority = max_priority
        self.queue_arguments = dict(queue_arguments) if queue_arguments else None
        self.no_declare = bool(no_declare)
        self.no_ack = bool(no_ack)
        self.alias = alias
        self.on_declared = on_declared
        self.recover = bool(recover)
        if channel is not None:
            self.revive(channel)

    def _when_bound(self) -> None:
        if self.exchange is not None and self._channel is not None:
            self.exchange = self.exchange._bound(self._channel, self._client)

    @property
    def declare_arguments(self) -> dict[str, Any] | None:
        """``queue_arguments`` plus the ``x-`` arguments from the keyword options."""
        return _queue_arguments(
            self.queue_arguments,
            self.message_ttl,
            self.expires,
            self.max_length,
            self.max_length_bytes,
            self.max_priority,
        )

    @property
    def declaration_key(self) -> tuple[Any, ...]:
        """What identifies this declaration in ``connection.declared_entities``."""
        return (
            "queue",
            self.name,
            self.durable,
            self.exclusive,
            self.auto_delete,
            _freeze(self.declare_arguments),
            self.exchange.declaration_key if self.exchange is not None else None,
            self.routing_key,
            _freeze(self.binding_arguments),
            tuple(b.key for b in self.bindings),
        )

    @property
    def can_cache_declaration(self) -> bool:
        """Auto-delete, expiring and not-yet-named queues are declared every time."""
        args = self.queue_arguments
        return (
            bool(self.name)
            and not self.auto_delete
            and (self.expires is None and not (args and "x-expires" in args))
        )

    # -- declaring ----------------------------------------------------------------

    def declare(self, nowait: bool = False, channel: Channel | None = None) -> str:
        """Declare the exchange, the queue and its bindings; return the queue name."""
        if self.no_declare:
            return self.name
        if self.exchange is not None:
            self.exchange.declare(nowait=nowait, channel=channel)
        self.queue_declare(nowait=nowait, passive=False, channel=channel)
        if self.exchange is not None and self.exchange.name:
            self.queue_bind(nowait=nowait, channel=channel)
        chan, client = self._target(channel)
        for b in self.bindings:
            if b.exchange is not None:
                b.exchange._bound(chan, client).declare(nowait=nowait)
            b.bind(self, nowait=nowait, channel=channel)
        self._note_declared(client)
        return self.name

    def queue_declare(
        self, nowait: bool = False, passive: bool = False, channel: Channel | None = None
    ) -> QueueDeclareOk | None:
        """Declare only the queue (``passive`` checks it exists and reads its counts).

        A server-named queue that already got its name is only checked
        (passively): brokers refuse to declare ``amq.*`` names.
        """
        chan, client = self._target(channel)
        ok = chan.queue_declare(
            queue=self.name,
            passive=passive or (self.server_named and bool(self.name)),
            durable=self.durable,
            exclusive=self.exclusive,
            auto_delete=self.auto_delete,
            nowait=nowait,
            arguments=self.declare_arguments,
        )
        if ok is not None:
            if not self.name:
                self.name = ok.queue
            if self.on_declared is not None:
                self.on_declared(*ok)
        if client is not None and not passive and self.recover and self.name:
            client.topology.record_queue(self)
        return ok

    def queue_bind(self, nowait: bool = False, channel: Channel | None = None) -> None:
        """Create the main binding (to :attr:`exchange` with :attr:`routing_key`)."""
        name = self.exchange.name if self.exchange is not None else ""
        self.bind_to(name, self.routing_key, self.binding_arguments, nowait, channel)

    def queue_unbind(self, nowait: bool = False, channel: Channel | None = None) -> None:
        """Remove the main binding."""
        name = self.exchange.name if self.exchange is not None else ""
        self.unbind_from(name, self.routing_key, self.binding_arguments, nowait, channel)

    def bind_to(
        self,
        exchange: Exchange | str = "",
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        nowait: bool = False,
        channel: Channel | None = None,
    ) -> None:
        """Bind this queue to ``exchange`` (recorded for recovery)."""
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        chan, client = self._target(channel)
        chan.queue_bind(
            queue=self.name, exchange=name, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if client is not None and self.recover:
            client.topology.record_binding(self, name, routing_key, arguments)

    def unbind_from(
        self,
        exchange: Exchange | str = "",
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        nowait: bool = False,
        channel: Channel | None = None,
    ) -> None:
        """Remove a binding (and forget it for recovery)."""
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        chan, client = self._target(channel)
        chan.queue_unbind(
            queue=self.name, exchange=name, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if client is not None:
            client.topology.forget_binding(self, name, routing_key, arguments)
            self._forget_declared(client)

    # -- using --------------------------------------------------------------------

    def get(
        self, no_ack: bool | None = None, accept: Iterable[str] | None = None
    ) -> Message | None:
        """Fetch one message with ``basic_get``; ``None`` when the queue is empty."""
        from broker.message import Message
        from broker.serialization import prepare_accept

        no_ack = self.no_ack if no_ack is None else no_ack
        raw = self.channel.basic_get(queue=self.name, no_ack=no_ack)
        if raw is None:
            return None
        return Message(raw, self.channel, prepare_accept(accept), no_ack=no_ack)

    def purge(self, nowait: bool = False) -> int:
        """Remove every ready message; return how many were removed."""
        return self.channel.queue_purge(queue=self.name, nowait=nowait) or 0

    def delete(self, if_unused: bool = False, if_empty: bool = False, nowait: bool = False) -> int:
        """Delete the queue and forget it for recovery; return the message count."""
        chan, client = self._target(None)
        count = chan.queue_delete(
            queue=self.name, if_unused=if_unused, if_empty=if_empty, nowait=nowait
        )
        if client is not None:
            self._forget_declared(client)
            client.topology.forget_queue(self)
        return count or 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return self.declaration_key == other.declaration_key

    def __hash__(self) -> int:
        return hash(("Q", self.name))

    def __repr__(self) -> str:
        if self.exchange is not None and self.exchange.name:
            target = f" -> {self.exchange.name!r}({self.exchange.type}) -> {self.routing_key!r}"
        elif self.bindings:
            target = f" -> {self.bindings!r}"
        else:
            target = ""
        where = f" bound to chan:{self._channel.channel_id}" if self._channel is not None else ""
        return f"<Queue {self.name!r}{target}{where}>"
