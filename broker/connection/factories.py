"""Factories that make pools, producers, consumers and simple queues from a Connection.

Mixed into :class:`broker.Connection`; each imports its module lazily so that
``import broker`` stays light and ``pools`` is only loaded when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from transports.base import Channel

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from broker.messaging.producer import Consumer, Producer
    from broker.messaging.simple import SimpleBuffer, SimpleQueue
    from pools import ChannelPool, ConnectionPool

__all__ = ["ConnectionFactories"]


class ConnectionFactories:
    """kombu's ``Connection.Pool()``, ``.Producer()`` ... factory methods."""

    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        """A pool of connections like this one (see :class:`pools.ConnectionPool`)."""
        from pools import ConnectionPool

        return ConnectionPool(cast("Connection", self), limit=limit, **kwargs)

    def ChannelPool(self, limit: int | None = None, **kwargs: Any) -> ChannelPool:
        """A pool of channels on this connection (see :class:`pools.ChannelPool`)."""
        from pools import ChannelPool

        return ChannelPool(cast("Connection", self), limit=limit, **kwargs)

    def Producer(self, channel: Channel | None = None, **kwargs: Any) -> Producer:
        """A :class:`broker.Producer` on ``channel`` (or on this connection)."""
        from broker.messaging.producer import Producer

        return Producer(channel if channel is not None else self, **kwargs)

    def Consumer(
        self, queues: Any = None, channel: Channel | None = None, **kwargs: Any
    ) -> Consumer:
        """A :class:`broker.Consumer` on ``channel`` (or on this connection)."""
        from broker.messaging.producer import Consumer

        return Consumer(channel if channel is not None else self, queues=queues, **kwargs)

    def SimpleQueue(self, name: Any, **kwargs: Any) -> SimpleQueue:
        """A :class:`broker.SimpleQueue` named ``name`` (or a Queue object)."""
        from broker.messaging.simple import SimpleQueue

        return SimpleQueue(self, name, **kwargs)

    def SimpleBuffer(self, name: Any, **kwargs: Any) -> SimpleBuffer:
        """A transient, auto-deleting :class:`broker.SimpleBuffer`."""
        from broker.messaging.simple import SimpleBuffer

        return SimpleBuffer(self, name, **kwargs)
