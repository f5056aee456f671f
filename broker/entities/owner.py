"""What entities, producers and consumers need of the connection that opened their channel.

Every channel carries its owner in the typed field
:attr:`Channel.owner <transports.base.Channel.owner>`, set when the channel is
opened (the :class:`broker.Connection` passes itself). Exchanges, queues,
producers and consumers reach that owner through the contract declared here,
:class:`ChannelOwner`, which :class:`broker.Connection` inherits explicitly:

* the declared-entities cache (:attr:`ChannelOwner.declared_entities`), so a
  declaration is not repeated on the same connection;
* the recovery record (:attr:`ChannelOwner.topology`, a :class:`RecoveryRecord`),
  replayed after a reconnect;
* channels (:meth:`ChannelOwner.channel`, :attr:`ChannelOwner.default_channel`),
  events (:meth:`ChannelOwner.drain_events`), blocking state and retrying
  (:meth:`ChannelOwner.ensure`).

A pool lease of a connection (``pools``) forwards every public attribute to
the connection it lends, and stands for it: :func:`as_owner` recognises it by
its public ``resource``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

if TYPE_CHECKING:
    from broker.entities.exchange import Exchange
    from broker.entities.queue import Queue
    from broker.retry.ensure import Errback, Revivable
    from broker.retry.policy import RetryPolicy
    from transports.base import Channel, ConfirmingChannel

__all__ = [
    "ChannelOwner",
    "Lent",
    "RecoverableConsumer",
    "RecoveryRecord",
    "as_owner",
    "owner_of",
]

R = TypeVar("R")


class RecoverableConsumer(Protocol):
    """What the recovery record needs of a consumer: move to a new connection, consume again."""

    def revive(self, channel: Any) -> None:
        """Re-attach to a new channel or connection."""
        ...

    def consume(self) -> None:
        """Start consuming (again); a no-op for queues already consumed."""
        ...


class RecoveryRecord(Protocol):
    """What entities and consumers record for replay after a reconnect.

    Implemented by :class:`broker.connection.recovery.Topology`.
    """

    def record_exchange(self, exchange: Exchange) -> None:
        """Remember ``exchange``."""
        ...

    def forget_exchange(self, exchange: Exchange | str) -> None:
        """Drop an exchange and every binding to it or from it."""
        ...

    def record_queue(self, queue: Queue) -> None:
        """Remember ``queue``."""
        ...

    def forget_queue(self, queue: Queue) -> None:
        """Drop a queue and its bindings."""
        ...

    def record_binding(
        self,
        queue: Queue,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember that ``queue`` is bound to ``exchange`` with ``routing_key``."""
        ...

    def forget_binding(
        self,
        queue: Queue,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Drop one queue binding."""
        ...

    def record_exchange_binding(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember that exchange ``destination`` is bound to exchange ``source``."""
        ...

    def forget_exchange_binding(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Drop one exchange-to-exchange binding."""
        ...

    def record_consumer(self, consumer: RecoverableConsumer) -> None:
        """Remember a consuming consumer."""
        ...

    def forget_consumer(self, consumer: RecoverableConsumer) -> None:
        """Drop a consumer (it was cancelled or closed)."""
        ...


class ChannelOwner(abc.ABC):
    """The connection behind a channel, as entities, producers and consumers use it.

    :class:`broker.Connection` inherits this explicitly, which is how it is
    recognised (``isinstance``), without probing attributes: probing
    ``default_channel`` would open a channel.
    """

    @property
    @abc.abstractmethod
    def declared_entities(self) -> set[Any]:
        """Keys of the entities declared on the current connection (cleared on reconnect)."""

    @property
    @abc.abstractmethod
    def topology(self) -> RecoveryRecord:
        """The record of declared entities and consumers replayed after a reconnect."""

    @property
    @abc.abstractmethod
    def default_channel(self) -> Channel:
        """The channel shared by simple uses of the connection (opened on demand)."""

    @abc.abstractmethod
    def channel(self) -> Channel:
        """Open a new channel of the connection's own."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether a live link exists (no I/O)."""

    @property
    @abc.abstractmethod
    def transport_options(self) -> Mapping[str, Any]:
        """The connection's transport options (``confirm_publish`` is read from them)."""

    @property
    @abc.abstractmethod
    def is_blocked(self) -> bool:
        """Whether the broker currently blocks the connection (``connection.blocked``)."""

    @abc.abstractmethod
    def drain_events(self, timeout: float | None = None) -> None:
        """Wait for one event (a delivery, a confirm) and dispatch it."""

    def wait_confirms(self, channel: ConfirmingChannel, timeout: float) -> None:
        """Wait for ``channel``'s next confirms and dispatch them on the calling thread.

        By default this drains the whole connection; :class:`broker.Connection`
        waits on ``channel`` alone, so threads sharing it keep their own events.
        """
        self.drain_events(timeout)

    @abc.abstractmethod
    def ensure(
        self,
        obj: Revivable,
        fun: Callable[..., R],
        errback: Errback | None = None,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        on_revive: Callable[[Channel], Any] | None = None,
        retry_errors: tuple[type[BaseException], ...] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Callable[..., R]:
        """Wrap ``fun`` so recoverable errors reconnect (or reopen the channel) and retry."""


@runtime_checkable
class Lent(Protocol):
    """A stand-in for a pooled object that lends it out (``pools``' lease).

    It forwards every public attribute to :attr:`resource`, the object itself.
    """

    @property
    def resource(self) -> object:
        """The lent object."""
        ...


def as_owner(obj: object) -> ChannelOwner | None:
    """``obj`` as a :class:`ChannelOwner` if it is one (or a lease of one), else ``None``.

    A lease is returned itself, not the connection it lends: it forwards every
    use to the connection while borrowed, and refuses use once given back, so
    nothing keeps working on a connection that went back to its pool.

    Raises:
        pools.ResourceReleased: ``obj`` is a lease that was already given back.
    """
    if isinstance(obj, ChannelOwner):
        return obj
    if isinstance(obj, Lent) and isinstance(obj.resource, ChannelOwner):
        return cast(ChannelOwner, obj)
    return None


def owner_of(channel: Channel) -> ChannelOwner | None:
    """The :class:`ChannelOwner` that opened ``channel``, or ``None`` (a bare transport channel)."""
    owner = channel.owner
    return owner if isinstance(owner, ChannelOwner) else None
