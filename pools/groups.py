"""Process-wide pool groups: one pool per broker, shared by the whole program.

``pools.connections[conn]`` is the :class:`~pools.ConnectionPool` and
``pools.producers[conn]`` the :class:`ProducerPool` for every connection
with the same URLs and options as ``conn`` (its ``identity``), created on
first use with the global default limit (:func:`get_limit`, changed with
:func:`set_limit`). :func:`reset` closes them all.

After ``os.fork()`` the groups stay usable in the child: each pool forgets the
parent's items by itself and opens its own on demand.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from broker.errors import BrokerConnectionError, OperationalError
from pools.connection import ConnectionPool, PooledConnection
from pools.resource import Lease, ResourcePool, _set_default_limit, check_limit, get_limit

if TYPE_CHECKING:
    from broker.messaging import Producer

    from broker.connection import Connection

__all__ = [
    "PoolGroup",
    "PooledProducer",
    "ProducerPool",
    "connections",
    "producers",
    "reset",
    "set_limit",
]

P = TypeVar("P", bound=ResourcePool[Any])

_CONNECTION_BROKEN = (BrokerConnectionError, OperationalError)


class PooledProducer(Lease["Producer"]):
    """A producer borrowed from a :class:`ProducerPool`, riding a pooled connection.

    ``publish(...)`` and every other attribute are forwarded to the
    :class:`broker.Producer`; ``release()`` (or leaving ``with``) returns both
    the producer and its connection.
    """

    __slots__ = ("_conn",)

    def __init__(self, pool: ResourcePool[Producer]) -> None:
        super().__init__(pool)
        self._conn: PooledConnection | None = None

    @property
    def connection(self) -> PooledConnection:
        """The pooled connection this producer publishes through while borrowed."""
        conn = self._conn
        if conn is None:
            return self.resource.connection  # type: ignore[no-any-return]
        return conn


class ProducerPool(ResourcePool["Producer"]):
    """A bounded pool of :class:`broker.Producer` objects over a connection pool.

    Acquiring a producer borrows a connection from ``connections`` for as
    long as the producer is held (``block``/``timeout`` apply to both
    waits), and points the producer at that connection's default channel,
    reviving it if it was last used on another one. Releasing gives both back.
    A connection error raised inside ``with`` discards the connection (the
    producer itself is kept and revived on its next checkout).

    Producers own no broker resources of their own (they publish on the
    connection's default channel), so disposing of one does no I/O.

    Args:
        connections: the connection pool to draw connections from.
        limit: most producers at once; ``None`` means :func:`get_limit`.
        **producer_options: passed to ``Producer(channel, **producer_options)``
            (``exchange``, ``routing_key``, ``serializer``, ``auto_declare`` ...).
    """

    lease_class = PooledProducer

    def __init__(
        self, connections: ConnectionPool, limit: int | None = None, **producer_options: Any
    ) -> None:
        self.connections = connections
        self.producer_options = producer_options
        self._making = threading.local()
        super().__init__(limit)

    def acquire(self, block: bool = False, timeout: float | None = None) -> PooledProducer:
        """Borrow a producer and a connection for it (see :meth:`ResourcePool.acquire`)."""
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
            channel = conn.default_channel
            producer = lease.resource
            if producer.channel is not channel:
                producer.revive(channel)
        except BaseException as exc:
            if lease is None:
                conn._pool._release(conn, self.is_broken_error(exc))
            else:
                self._release(lease, self.is_broken_error(exc))
            raise
        return lease

    def _release(self, lease: Lease[Producer], broken: bool) -> None:
        conn = getattr(lease, "_conn", None)
        if conn is not None:
            lease._conn = None  # type: ignore[attr-defined]
            conn._pool._release(conn, broken)
        super()._release(lease, False)

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> Producer:
        from broker.messaging import Producer  # lazily: the messaging layer is optional here

        conn: PooledConnection = self._making.conn
        return Producer(conn.default_channel, **self.producer_options)

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _CONNECTION_BROKEN)


class PoolGroup(Generic[P]):
    """Pools keyed by connection identity, created on first use.

    Args:
        create: makes the pool for a connection (called once per identity).
    """

    def __init__(self, create: Callable[[Connection], P]) -> None:
        self._create = create
        self._pools: dict[Hashable, P] = {}
        self._lock = threading.Lock()
        _groups.append(self)

    def __getitem__(self, connection: Connection) -> P:
        key = connection.identity
        pool = self._pools.get(key)
        if pool is None or pool.is_closed:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None or pool.is_closed:
                    pool = self._pools[key] = self._create(connection)
        return pool

    def __contains__(self, connection: Connection) -> bool:
        return connection.identity in self._pools

    def __len__(self) -> int:
        return len(self._pools)

    def __iter__(self) -> Iterator[P]:
        return iter(list(self._pools.values()))

    def resize_all(self, limit: int) -> None:
        """Resize every pool of the group."""
        for pool in self:
            pool.resize(limit)

    def clear(self) -> None:
        """Close every pool (borrowed items are closed when returned) and forget them."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def _after_fork(self) -> None:
        # A parent thread may have held the lock at fork time.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<PoolGroup of {len(self._pools)} pools>"


_groups: list[PoolGroup[Any]] = []


def _new_connection_pool(connection: Connection) -> ConnectionPool:
    # A clone as template: the group must not pin the caller's (maybe connected) object.
    return ConnectionPool(connection.clone(), limit=get_limit())


def _new_producer_pool(connection: Connection) -> ProducerPool:
    return ProducerPool(connections[connection], limit=get_limit())


#: ``connections[conn]``: the shared :class:`ConnectionPool` for ``conn``'s broker.
connections: PoolGroup[ConnectionPool] = PoolGroup(_new_connection_pool)
#: ``producers[conn]``: the shared :class:`ProducerPool` for ``conn``'s broker.
producers: PoolGroup[ProducerPool] = PoolGroup(_new_producer_pool)


def set_limit(limit: int) -> int:
    """Set the default limit of new pools and resize the group pools to it.

    Raises:
        ConfigurationError: ``limit`` is not a positive integer.
    """
    _set_default_limit(check_limit(limit))
    for group in _groups:
        group.resize_all(limit)
    return limit


def reset() -> None:
    """Close every group pool and forget them (producers first, then connections)."""
    producers.clear()
    connections.clear()


def _reset_group_locks() -> None:
    for group in _groups:
        group._after_fork()


os.register_at_fork(after_in_child=_reset_group_locks)
