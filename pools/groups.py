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
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pools.connection import ConnectionPool
from pools.limits import check_limit, get_limit, set_default_limit
from pools.producer import ProducerPool
from pools.resource import ResourcePool

if TYPE_CHECKING:
    from broker.connection.connection import Connection

__all__ = [
    "PoolGroup",
    "connections",
    "producers",
    "reset",
    "set_limit",
]

P = TypeVar("P", bound=ResourcePool[Any])


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

    def resize_all(self, limit: int, force: bool = True) -> None:
        """Change the limit of every pool of the group (see :meth:`ResourcePool.set_limit`).

        Raises:
            PoolInUse: without ``force``, a pool has more items borrowed than ``limit``.
        """
        for pool in self:
            pool.set_limit(limit, force)

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


def set_limit(limit: int, force: bool = False) -> int:
    """Set the default limit of new pools and change the group pools' limits to it.

    kombu's rule: a group pool with more items borrowed than ``limit`` refuses
    unless ``force`` (then its borrowers keep their items, which are closed as
    they come back until the pool fits). Returns ``limit``.

    Raises:
        PoolInUse: (a ``RuntimeError``) without ``force``, a group pool has more
            items borrowed than ``limit``; the pools before it in the group were
            changed, the default limit was not.
        ConfigurationError: ``limit`` is not a positive integer.
    """
    check_limit(limit)
    for group in _groups:
        group.resize_all(limit, force)
    set_default_limit(limit)
    return limit


def reset() -> None:
    """Close every group pool and forget them (producers first, then connections)."""
    producers.clear()
    connections.clear()


def _reset_group_locks() -> None:
    for group in _groups:
        group._after_fork()


os.register_at_fork(after_in_child=_reset_group_locks)
