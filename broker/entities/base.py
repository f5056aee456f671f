"""What exchanges and queues share: binding to a channel, the declaration cache.

An entity is bound to a channel and, when known, to the channel's owner (the
:class:`broker.Connection` that opened it, through the
:class:`~broker.entities.owner.ChannelOwner` contract). The owner is where
declarations are remembered: ``owner.declared_entities`` (skip repeats until
the next reconnect) and ``owner.topology`` (replay after one).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from broker.entities.owner import ChannelOwner, as_owner, owner_of
from broker.errors import ConfigurationError, NotBoundError

if TYPE_CHECKING:
    from broker.entities.queue import Exchange, Queue
    from transports.base import Channel

__all__ = [
    "PERSISTENT",
    "TRANSIENT",
    "Entity",
    "bound_channel",
    "freeze",
    "maybe_declare",
    "normalize_delivery_mode",
    "queue_arguments",
]

TRANSIENT = 1
PERSISTENT = 2
_DELIVERY_MODES = {"transient": TRANSIENT, "persistent": PERSISTENT, 1: 1, 2: 2}


def normalize_delivery_mode(value: int | str | None) -> int | None:
    """Map ``'transient'``/``'persistent'``/1/2/None to 1, 2 or None.

    Raises:
        ConfigurationError: any other value.
    """
    if value is None:
        return None
    try:
        return _DELIVERY_MODES[value]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"delivery_mode must be 1, 2, 'transient' or 'persistent', got {value!r}"
        ) from None


def bound_channel(channel_or_owner: Any) -> tuple[Channel, ChannelOwner | None]:
    """Return ``(channel, owner)`` for a channel or a :class:`broker.Connection`.

    A connection (or a pool lease of one) stands for its default channel.
    ``owner`` is ``None`` for a channel opened on a bare transport connection.
    """
    owner = as_owner(channel_or_owner)
    if owner is not None:
        return owner.default_channel, owner
    return channel_or_owner, owner_of(channel_or_owner)


class Entity:
    """Binding to a channel, shared by exchanges and queues."""

    name: str
    no_declare: bool
    recover: bool
    _channel: Channel | None = None
    _owner: ChannelOwner | None = None

    def __call__(self, channel: Any) -> Self:
        """Return a copy bound to ``channel`` (or to a connection's default channel)."""
        return self.bind(channel)

    def bind(self, channel: Any, owner: ChannelOwner | None = None) -> Self:
        """A copy bound to ``channel`` (see :meth:`revive`)."""
        bound: Self = copy.copy(self)
        bound.revive(channel, owner)
        return bound

    def maybe_bind(self, channel: Any) -> Self:
        """Bind in place unless already bound; return self."""
        if self._channel is None and channel is not None:
            self.revive(channel)
        return self

    def revive(self, channel: Any, owner: ChannelOwner | None = None) -> None:
        """Re-bind in place to ``channel`` (after a reconnect).

        Args:
            channel: a channel, or a :class:`broker.Connection` (or a pool
                lease of one), meaning its default channel.
            owner: the connection ``channel`` belongs to, for producers and
                consumers that know it; by default the channel's own
                :attr:`~transports.base.Channel.owner`.
        """
        chan, found = bound_channel(channel)
        self._channel, self._owner = chan, owner if owner is not None else found
        self._when_bound()

    def _when_bound(self) -> None:
        pass

    @property
    def is_bound(self) -> bool:
        """Whether the entity is bound to a channel."""
        return self._channel is not None

    @property
    def channel(self) -> Channel:
        """The bound channel.

        Raises:
            NotBoundError: the entity is not bound (call it with a channel); a
                :class:`~broker.errors.ConfigurationError`.
        """
        if self._channel is None:
            raise NotBoundError(
                f"{self!r} is not bound to a channel: use entity(channel) or pass channel="
            )
        return self._channel

    def _target(self, channel: Channel | None) -> tuple[Channel, ChannelOwner | None]:
        if channel is None or channel is self._channel:
            return self.channel, self._owner
        return channel, owner_of(channel)

    @property
    def declaration_key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    @property
    def can_cache_declaration(self) -> bool:
        raise NotImplementedError

    def _note_declared(self, owner: ChannelOwner | None) -> None:
        if owner is not None and self.can_cache_declaration:
            owner.declared_entities.add(self.declaration_key)

    def _forget_declared(self, owner: ChannelOwner | None) -> None:
        if owner is not None:
            owner.declared_entities.discard(self.declaration_key)


def maybe_declare(entity: Exchange | Queue, channel: Any = None) -> bool:
    """Declare ``entity`` unless this connection already declared it.

    Args:
        entity: an exchange or queue; bound in place to ``channel`` if unbound.
        channel: a channel or connection; defaults to the entity's own.

    Returns:
        True if a declaration was sent, False if it was cached or ``no_declare``.
    """
    if entity.no_declare:
        return False
    if channel is not None:
        chan, owner = bound_channel(channel)
        entity.maybe_bind(channel)
        if entity._channel is chan:
            owner = entity._owner
    else:
        chan, owner = entity.channel, entity._owner
    if owner is not None and entity.declaration_key in owner.declared_entities:
        return False
    if chan is entity._channel:
        entity.declare()
    else:
        entity.declare(channel=chan)
    return True


def freeze(value: Any) -> Any:
    """A hashable stand-in for declare/binding arguments (dicts, lists, scalars)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(freeze(v) for v in value)
    return value


def queue_arguments(
    base: Mapping[str, Any] | None,
    message_ttl: float | None,
    expires: float | None,
    max_length: int | None,
    max_length_bytes: int | None,
    max_priority: int | None,
) -> dict[str, Any] | None:
    """``queue_declare`` arguments: ``base`` plus the ``x-`` limits given as keywords."""
    args = dict(base) if base else {}
    # kombu's conventions: times are given in seconds, sent in milliseconds.
    if message_ttl is not None:
        args["x-message-ttl"] = int(message_ttl * 1000)
    if expires is not None:
        args["x-expires"] = int(expires * 1000)
    if max_length is not None:
        args["x-max-length"] = int(max_length)
    if max_length_bytes is not None:
        args["x-max-length-bytes"] = int(max_length_bytes)
    if max_priority is not None:
        args["x-max-priority"] = int(max_priority)
    return args or None
