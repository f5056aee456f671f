"""Exchanges, queues and bindings, with kombu's names and defaults.

``Queue('q', Exchange('x'), 'rk')`` reads as it does in kombu. An entity is
*bound* to a channel by calling it (``queue(channel)`` returns a bound copy;
a :class:`broker.Connection` may be passed instead, meaning its default
channel). Bound entities declare, bind, purge and delete themselves.
:class:`Exchange` and :class:`binding` live in :mod:`broker.entities.exchange`
and are re-exported here; an exchange can also be bound to another exchange
(:meth:`Exchange.bind_to <broker.entities.exchange.Exchange.bind_to>`).

Declarations made through a channel that belongs to a :class:`broker.Connection`
are remembered twice:

* in ``connection.declared_entities``, so :func:`maybe_declare` does not repeat
  them on the same connection (the set is cleared on reconnect). Auto-delete
  and expiring entities are never cached: they can vanish behind our back.
* in ``connection.topology`` (:class:`broker.connection.recovery.Topology`), so they are
  declared again after a reconnect -- unless ``no_declare=True`` or
  ``recover=False`` was given. Bindings (queue-to-exchange and
  exchange-to-exchange) are recorded the same way and forgotten on unbind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from broker.entities.base import (
    PERSISTENT,
    TRANSIENT,
    Entity,
    bound_channel,
    maybe_declare,
    normalize_delivery_mode,
)
from broker.entities.base import freeze as _freeze
from broker.entities.base import queue_arguments as _queue_arguments
from broker.entities.exchange import Exchange, binding
from broker.entities.queue_types import type_arguments
from broker.errors import ConfigurationError

if TYPE_CHECKING:
    from broker.messaging.message import Message
    from transports.base import Channel, QueueDeclareOk

__all__ = [
    "PERSISTENT",
    "TRANSIENT",
    "Exchange",
    "Queue",
    "binding",
    "bound_channel",
    "maybe_declare",
    "normalize_delivery_mode",
]


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
        queue_type: ``'classic'``, ``'quorum'`` or ``'stream'`` (sent as
            ``x-queue-type``); ``None`` leaves it to the broker (or to an
            ``x-queue-type`` in ``queue_arguments``). Quorum and stream queues
            must be named, durable, not exclusive, not auto-delete and without
            priorities (see ``broker.entities.queue_types``).
        delivery_limit: quorum queues: redeliveries after which a message is
            dropped or dead-lettered (``x-delivery-limit``).
        dead_letter_strategy: quorum queues: ``'at-most-once'`` or
            ``'at-least-once'`` (``x-dead-letter-strategy``; the latter needs
            ``queue_arguments={'x-overflow': 'reject-publish'}``).

    Raises:
        ConfigurationError: a queue type, or a type-specific option, that
            RabbitMQ would refuse with these settings.
    """

    #: ``delivery_mode`` 1, as on :class:`Exchange` (kombu's name).
    TRANSIENT_DELIVERY_MODE: ClassVar[int] = TRANSIENT
    #: ``delivery_mode`` 2, as on :class:`Exchange` (kombu's name).
    PERSISTENT_DELIVERY_MODE: ClassVar[int] = PERSISTENT

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
        queue_type: str | None = None,
        delivery_limit: int | None = None,
        dead_letter_strategy: str | None = None,
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
        #: The queue's type in effect (from ``queue_type`` or ``x-queue-type``), if named.
        self.queue_type, self._type_arguments = type_arguments(
            name,
            queue_type,
            durable=self.durable,
            exclusive=self.exclusive,
            auto_delete=self.auto_delete,
            queue_arguments=self.queue_arguments,
            max_priority=max_priority,
            delivery_limit=delivery_limit,
            dead_letter_strategy=dead_letter_strategy,
        )
        self.delivery_limit = delivery_limit
        self.dead_letter_strategy = dead_letter_strategy
        if channel is not None:
            self.revive(channel)

    def _when_bound(self) -> None:
        if self.exchange is not None and self._channel is not None:
            self.exchange = self.exchange.bind(self._channel, self._owner)

    @property
    def declare_arguments(self) -> dict[str, Any] | None:
        """``queue_arguments`` plus the ``x-`` arguments from the keyword options."""
        base = self.queue_arguments
        if self._type_arguments:
            base = {**(base or {}), **self._type_arguments}
        return _queue_arguments(
            base,
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
        chan, owner = self._target(channel)
        for b in self.bindings:
            if b.exchange is not None:
                b.exchange.bind(chan, owner).declare(nowait=nowait)
            b.bind(self, nowait=nowait, channel=channel)
        self._note_declared(owner)
        return self.name

    def queue_declare(
        self, nowait: bool = False, passive: bool = False, channel: Channel | None = None
    ) -> QueueDeclareOk | None:
        """Declare only the queue (``passive`` checks it exists and reads its counts).

        A server-named queue that already got its name is only checked
        (passively): brokers refuse to declare ``amq.*`` names.
        """
        chan, owner = self._target(channel)
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
        if owner is not None and not passive and self.recover and self.name:
            owner.topology.record_queue(self)
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
        chan, owner = self._target(channel)
        chan.queue_bind(
            queue=self.name, exchange=name, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if owner is not None and self.recover:
            owner.topology.record_binding(self, name, routing_key, arguments)

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
        chan, owner = self._target(channel)
        chan.queue_unbind(
            queue=self.name, exchange=name, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if owner is not None:
            owner.topology.forget_binding(self, name, routing_key, arguments)
            self._forget_declared(owner)

    # -- using --------------------------------------------------------------------

    def get(
        self, no_ack: bool | None = None, accept: Iterable[str] | None = None
    ) -> Message | None:
        """Fetch one message with ``basic_get``; ``None`` when the queue is empty."""
        from broker.messaging.message import Message
        from broker.messaging.serialization import prepare_accept

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
        chan, owner = self._target(None)
        count = chan.queue_delete(
            queue=self.name, if_unused=if_unused, if_empty=if_empty, nowait=nowait
        )
        if owner is not None:
            self._forget_declared(owner)
            owner.topology.forget_queue(self)
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
        kind = f" ({self.queue_type})" if self.queue_type is not None else ""
        return f"<Queue {self.name!r}{kind}{target}{where}>"
