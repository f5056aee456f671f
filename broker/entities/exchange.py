"""Exchanges and the :class:`binding` helper, with kombu's names and defaults.

Re-exported by :mod:`broker.entities.queue` (and :mod:`broker`), which documents how
entities are bound to channels and how their declarations are remembered.
Exchanges may be bound to other exchanges (:meth:`Exchange.bind_to`, a
RabbitMQ extension); those bindings are replayed after a reconnect too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from broker.entities.base import PERSISTENT, TRANSIENT, Entity, normalize_delivery_mode
from broker.entities.base import freeze as _freeze
from broker.errors import ConfigurationError

if TYPE_CHECKING:
    from broker.entities.queue import Queue
    from transports.base import Channel

__all__ = ["Exchange", "binding"]


class Exchange(Entity):
    """An AMQP exchange.

    Args:
        name: the exchange name; ``''`` is the default exchange (never declared).
        type: ``direct``, ``topic``, ``fanout``, ``headers`` or a plugin type.
        channel: a channel or connection to bind to.
        durable: survive a broker restart.
        auto_delete: delete when its last binding (to a queue or an exchange) goes.
        delivery_mode: default for messages published to it (1/``'transient'``
            or 2/``'persistent'``); ``None`` means persistent when durable.
        arguments: extra declare arguments.
        no_declare: never declare (it exists already); also not recorded.
        passive: declare only checks that the exchange exists.
        recover: record the exchange for replay after a reconnect.
    """

    #: ``delivery_mode`` 1: the broker may lose the message on restart (kombu's name).
    TRANSIENT_DELIVERY_MODE: ClassVar[int] = TRANSIENT
    #: ``delivery_mode`` 2: a durable queue keeps the message across restarts (kombu's name).
    PERSISTENT_DELIVERY_MODE: ClassVar[int] = PERSISTENT

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
        chan, owner = self._target(channel)
        chan.exchange_declare(
            exchange=self.name,
            type=self.type,
            passive=passive,
            durable=self.durable,
            auto_delete=self.auto_delete,
            nowait=nowait,
            arguments=self.arguments,
        )
        if owner is not None and not passive:
            self._note_declared(owner)
            if self.recover:
                owner.topology.record_exchange(self)

    def delete(self, if_unused: bool = False, nowait: bool = False) -> None:
        """Delete the exchange and forget it for recovery."""
        chan, owner = self._target(None)
        chan.exchange_delete(exchange=self.name, if_unused=if_unused, nowait=nowait)
        if owner is not None:
            self._forget_declared(owner)
            owner.topology.forget_exchange(self)

    def bind_to(
        self,
        exchange: Exchange | str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        nowait: bool = False,
        channel: Channel | None = None,
    ) -> None:
        """Bind this exchange to the source ``exchange`` (RabbitMQ's ``exchange.bind``).

        Messages published to the source that match the binding (by the
        source's type) are routed on through this exchange's own bindings;
        a queue reachable by several paths gets one copy. Both exchanges must
        exist. The binding is recorded for recovery unless ``recover=False``.

        Args:
            exchange: the source, an :class:`Exchange` or an exchange name.
            routing_key: the binding key, matched by the source's type.
            arguments: binding arguments (e.g. for a headers source).
            nowait: do not wait for the broker's reply.
            channel: the channel to use instead of the bound one.

        Raises:
            ConfigurationError: ``exchange`` is not an exchange or a name, or
                either side is the default exchange ``''``.
            broker.errors.NotFound: either exchange does not exist.
        """
        source = self._source_name(exchange)
        chan, owner = self._target(channel)
        chan.exchange_bind(
            destination=self.name, source=source, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if owner is not None and self.recover:
            owner.topology.record_exchange_binding(self.name, source, routing_key, arguments)

    def unbind_from(
        self,
        exchange: Exchange | str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        nowait: bool = False,
        channel: Channel | None = None,
    ) -> None:
        """Remove the binding of this exchange to the source ``exchange`` (and forget it).

        Takes the same arguments as :meth:`bind_to`; a binding that does not
        exist is not an error.
        """
        source = self._source_name(exchange)
        chan, owner = self._target(channel)
        chan.exchange_unbind(
            destination=self.name, source=source, routing_key=routing_key, nowait=nowait,
            arguments=arguments,
        )  # fmt: skip
        if owner is not None:
            owner.topology.forget_exchange_binding(self.name, source, routing_key, arguments)

    def _source_name(self, exchange: object) -> str:
        if isinstance(exchange, Exchange):
            source = exchange.name
        elif isinstance(exchange, str):
            source = exchange
        else:
            raise ConfigurationError(
                f"exchange to bind {self.name!r} to must be an Exchange or an exchange name "
                f"(str), got {exchange!r}"
            )
        if not source or not self.name:
            # RabbitMQ refuses it (ACCESS_REFUSED) and closes the channel.
            raise ConfigurationError(
                f"the default exchange '' cannot take part in an exchange-to-exchange "
                f"binding (source {source!r}, destination {self.name!r}); use named exchanges"
            )
        return source

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
