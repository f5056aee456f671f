"""A bounded pool of producers riding pooled connections (``pools.producers[conn]``)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from broker.errors import BrokerConnectionError, ChannelError, OperationalError
from pools.connection import ConnectionPool, PooledConnection
from pools.lease import Lease
from pools.resource import ResourcePool, logger

if TYPE_CHECKING:
    from broker.messaging.producer import Producer

__all__ = ["PooledProducer", "ProducerPool"]

_CONNECTION_BROKEN = (BrokerConnectionError, OperationalError)


class PooledProducer(Lease["Producer"]):
    """A producer borrowed from a :class:`ProducerPool`, riding a pooled connection.

    ``publish(...)`` and every other attribute are forwarded to the
    :class:`broker.Producer`; ``release()`` (or leaving ``with``) returns both
    the producer and its connection.
    """

    __slots__ = ("_conn",)

    _conn: PooledConnection | None

    @property
    def connection(self) -> PooledConnection:
        """The pooled connection this producer publishes through while borrowed."""
        conn: PooledConnection | None = getattr(self, "_conn", None)
        if conn is None:
            self.resource  # noqa: B018 - raises ResourceReleased with a clear message
            raise AttributeError("connection")
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        assert isinstance(pool, ProducerPool)
        pool._give_back(
            self,
            connection_broken=isinstance(exc, _CONNECTION_BROKEN),
            channel_broken=isinstance(exc, ChannelError),
        )


class ProducerPool(ResourcePool["Producer"]):
    """A bounded pool of :class:`broker.Producer` objects over a connection pool.

    Acquiring a producer first borrows a connection from ``connections`` for
    as long as the producer is held (``block`` and ``timeout`` cover both
    waits); a producer last used on another connection is revived onto this
    one (it opens its channel there on its first publish). Releasing gives
    both back. A connection error raised inside ``with`` discards the
    connection; a channel error makes the producer drop its channel. The
    producer itself is kept either way.

    Disposing of a producer closes it, which closes only a confirm channel it
    opened for itself; it never closes the pooled connection.

    Args:
        connections: the connection pool to draw connections from.
        limit: most producers at once; ``None`` means :func:`pools.get_limit`.
        **producer_options: passed on as ``Producer(connection, **producer_options)``
            (``exchange``, ``routing_key``, ``serializer``, ``auto_declare`` ...).
    """

    lease_class = PooledProducer

    def __init__(
        self, connections: ConnectionPool, limit: int | None = None, **producer_options: Any
    ) -> None:
        self.connections = connections
        self.producer_options = producer_options
        self._making = threading.local()  # the connection a new producer is made on
        super().__init__(limit)

    def acquire(self, block: bool = False, timeout: float | None = None) -> PooledProducer:
        """Borrow a producer together with a pooled connection for it.

        Raises:
            ConnectionLimitExceeded: no connection became free in time.
            LimitExceeded: no producer became free in time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self.connections.acquire(block, timeout)
        lease: PooledProducer | None = None
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._making.conn = conn
            try:
                lease = super().acquire(block, remaining)  # type: ignore[assignment]
            finally:
                self._making.conn = None
            assert lease is not None
            lease._conn = conn
            producer, connection = lease.resource, conn.resource
            if producer.connection is not connection:
                producer.revive(connection)
        except BaseException as exc:
            if lease is None:
                self.connections._release(conn, isinstance(exc, _CONNECTION_BROKEN))
            else:
                lease.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return lease

    def _release(self, lease: Lease[Producer], broken: bool) -> None:
        # release() / discard() / pool.release(): ``broken`` concerns the connection.
        self._give_back(lease, connection_broken=broken, channel_broken=False)

    def _give_back(
        self, lease: Lease[Producer], *, connection_broken: bool, channel_broken: bool
    ) -> None:
        entry = lease._entry
        conn = getattr(lease, "_conn", None)
        if conn is not None:
            lease._conn = None  # type: ignore[attr-defined]
            if entry is not None and (connection_broken or channel_broken):
                # The producer must not keep a dead channel: drop it now (no I/O
                # unless it owned a confirm channel, which is then closed).
                try:
                    entry.obj.revive(conn.resource)
                except Exception:  # a release must not raise over the user's error
                    logger.debug("%r could not revive %r", self, entry.obj, exc_info=True)
            self.connections._release(conn, connection_broken)
        super()._release(lease, False)

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> Producer:
        from broker.messaging.producer import (
            Producer,  # lazily: pools must not import messaging early
        )

        conn: PooledConnection = self._making.conn
        return Producer(conn.resource, **self.producer_options)

    def dispose_resource(self, obj: Producer, reason: str) -> None:
        obj.close()

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _CONNECTION_BROKEN)
