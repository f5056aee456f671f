"""A bounded pool of producers riding pooled connections (``pools.producers[conn]``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from broker.errors import BrokerConnectionError, BrokerError, ChannelError, OperationalError
from pools.connection import ConnectionPool, PooledConnection
from pools.lease import Lease, LeaseOwner
from pools.resource import ResourcePool
from pools.waiting import GateFactory, closed_gate

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from broker.messaging.producer import Producer
    from pools.decide import Entry

__all__ = ["PooledProducer", "ProducerPool"]

logger = logging.getLogger("broker.pool")

_CONNECTION_BROKEN = (BrokerConnectionError, OperationalError)

P = TypeVar("P", bound="PooledProducer")


class PooledProducer(Lease["Producer"]):
    """A producer borrowed from a :class:`ProducerPool`, riding a pooled connection.

    ``publish(...)`` and every other attribute are forwarded to the
    :class:`broker.Producer`; ``release()`` (or leaving ``with``) returns both
    the producer and its connection.
    """

    __slots__ = ("_conn",)

    _conn: PooledConnection | None

    @classmethod
    def maker(cls: type[P], pool: LeaseOwner[Any]) -> Callable[[Entry[Any]], P]:
        """Leases of ``pool``, each without a connection until it is given one."""
        make_lease = super().maker(pool)

        def make(entry: Entry[Any]) -> P:
            lease: P = make_lease(entry)
            lease._conn = None
            return lease

        return make

    @property
    def connection(self) -> PooledConnection:
        """The pooled connection this producer publishes through while borrowed."""
        conn = self._conn
        if conn is None:
            self.resource  # noqa: B018 - raises ResourceReleased with a clear message
            raise AttributeError("connection")
        return conn

    def release(self) -> None:
        """Return the producer and its connection. A second call does nothing."""
        self._give_back(connection_broken=False, channel_broken=False)

    def discard(self) -> None:
        """Return the producer, and its connection as broken (the producer is kept)."""
        self._give_back(connection_broken=True, channel_broken=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._give_back(
            connection_broken=isinstance(exc, _CONNECTION_BROKEN),
            channel_broken=isinstance(exc, ChannelError),
        )

    def _ride(self, conn: PooledConnection) -> None:
        """Set by the pool once, right after the checkout: the connection lent with us."""
        self._conn = conn

    def _give_back(self, *, connection_broken: bool, channel_broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if connection_broken or channel_broken:
                # The producer must not keep a dead channel: drop it now (no I/O
                # unless it owned a confirm channel, which is then closed).
                try:
                    self.resource.revive(conn.resource)
                except Exception:  # a release must not raise over the user's error
                    logger.debug("%r could not revive its producer", self, exc_info=True)
            if connection_broken:
                conn.discard()
            else:
                pool = self._pool
                assert isinstance(pool, ProducerPool)
                pool.park_channel(self.resource, conn.resource)  # before another may take conn
                conn.release()
        super().release()  # the producer itself is kept either way


class ProducerPool(ResourcePool["Producer"]):
    """A bounded pool of :class:`broker.Producer` objects over a connection pool.

    Acquiring a producer first borrows a connection from ``connections`` for
    as long as the producer is held (``block`` and ``timeout`` cover both
    waits); a producer last used on another connection is revived onto this
    one (it opens its channel there on its first publish). Releasing gives
    both back. A connection error raised inside ``with`` discards the
    connection; a channel error makes the producer drop its channel. The
    producer itself is kept either way.

    A confirming producer's channel stays with the connection, not the
    producer: released, the producer leaves it parked here for whichever
    producer rides that connection next, so that a producer and a connection
    paired anew (two pools hand them out independently) cost no
    ``channel.open`` and ``confirm.select``. At most one channel per
    connection is parked (a connection is lent to one producer at a time);
    :meth:`close` closes them.

    Disposing of a producer closes it, which closes only a confirm channel it
    holds; it never closes the pooled connection.

    Args:
        connections: the connection pool to draw connections from.
        limit: most producers at once; ``None`` means :func:`pools.get_limit`.
        clock: monotonic time source for waiting (tests inject a fake one).
        gate_factory: what a blocked ``acquire`` sleeps on (see :mod:`pools.waiting`).
        **producer_options: passed on as ``connection.Producer(**producer_options)``
            (``exchange``, ``routing_key``, ``serializer``, ``auto_declare`` ...).
    """

    lease_class = PooledProducer

    def __init__(
        self,
        connections: ConnectionPool,
        limit: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        gate_factory: GateFactory = closed_gate,
        **producer_options: Any,
    ) -> None:
        self.connections = connections
        self.producer_options = producer_options
        self._now = clock  # for the deadline shared by both waits
        self._making = threading.local()  # the connection a new producer is made on
        # Confirm channels left by released producers: id(connection) -> (connection, channel);
        # the entry holds the connection, so no other object can take its id meanwhile.
        self._parked: dict[int, tuple[Connection, Any]] = {}
        self._parking = threading.Lock()
        self._closed = False
        super().__init__(limit, clock=clock, gate_factory=gate_factory)

    def acquire(self, block: bool = False, timeout: float | None = None) -> PooledProducer:
        """Borrow a producer together with a pooled connection for it.

        Raises:
            ConnectionLimitExceeded: no connection became free in time.
            LimitExceeded: no producer became free in time.
        """
        deadline = None if timeout is None else self._now() + timeout
        conn = self.connections.acquire(block, timeout)
        try:
            remaining = None if deadline is None else max(0.0, deadline - self._now())
            self._making.conn = conn
            try:
                lease = super().acquire(block, remaining)
            finally:
                self._making.conn = None
        except BaseException as exc:
            if isinstance(exc, _CONNECTION_BROKEN):
                conn.discard()
            else:
                conn.release()
            raise
        assert isinstance(lease, PooledProducer)
        lease._ride(conn)
        try:
            producer, connection = lease.resource, conn.resource
            parked = self._unpark(connection) if producer.confirm_publish else None
            if parked is not None:
                producer.adopt_channel(parked)
            elif producer.connection is not connection:
                producer.revive(connection)
        except BaseException as exc:
            lease.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return lease

    def park_channel(self, producer: Producer, connection: Connection) -> None:
        """Keep ``producer``'s confirm channel on ``connection`` for the next producer there.

        Called as a borrowed producer is returned, before its connection is.
        """
        if not producer.confirm_publish:
            return
        channel = producer.detach_channel()
        if channel is None:
            return
        with self._parking:
            if not self._closed:
                if len(self._parked) >= self.connections.limit:
                    self._forget_closed_locked()  # of connections the pool has let go
                self._parked[id(connection)] = (connection, channel)
                return
        _close_quietly(channel)  # the pool closed meanwhile

    def _unpark(self, connection: Connection) -> Any:
        with self._parking:
            parked = self._parked.pop(id(connection), None)
        if parked is None:
            return None
        channel = parked[1]
        return channel if channel.is_open else None

    def _forget_closed_locked(self) -> None:
        for key, (_, channel) in list(self._parked.items()):
            if not channel.is_open:
                del self._parked[key]

    def close(self) -> None:
        """Close the pool (see :meth:`ResourcePool.close`) and the confirm channels parked in it."""
        with self._parking:
            self._closed = True
            parked, self._parked = list(self._parked.values()), {}
        for _, channel in parked:
            _close_quietly(channel)
        super().close()

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> Producer:
        conn: PooledConnection = self._making.conn
        return conn.resource.Producer(**self.producer_options)

    def dispose_resource(self, obj: Producer, reason: str) -> None:
        obj.close()

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _CONNECTION_BROKEN)

    def after_fork(self) -> None:
        # The parked channels are on the parent's connections: forgotten, never
        # closed. A fresh lock: a parent thread may have held the old one at the fork.
        self._parking = threading.Lock()
        self._parked = {}


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except BrokerError:
        logger.debug("could not close the parked channel %r", channel, exc_info=True)
