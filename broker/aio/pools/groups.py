"""Process-wide pool groups: ``connections[conn]`` and ``producers[conn]``.

One pool per broker identity (same URLs and options as ``conn``), created on
first use with :data:`DEFAULT_LIMIT`, as :mod:`pools.groups` on the
synchronous side; :func:`reset` closes them all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from broker.aio.pools.connection import ConnectionPool
from broker.aio.pools.producer import ProducerPool
from broker.aio.pools.resource import ResourcePool

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["DEFAULT_LIMIT", "PoolGroup", "connections", "producers", "reset"]

#: The limit of the pools in :data:`connections` and :data:`producers`.
DEFAULT_LIMIT = 10

P = TypeVar("P", bound=ResourcePool[Any])


class PoolGroup(Generic[P]):
    """Pools keyed by connection identity, created on first use."""

    def __init__(self, create: Callable[[Connection], P]) -> None:
        self._create = create
        self._pools: dict[Hashable, P] = {}

    def __getitem__(self, connection: Connection) -> P:
        key = connection.identity
        pool = self._pools.get(key)
        if pool is None or pool.is_closed:
            pool = self._pools[key] = self._create(connection)
        return pool

    def __len__(self) -> int:
        return len(self._pools)

    async def close(self) -> None:
        """Close every pool of the group."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    def __repr__(self) -> str:
        return f"<aio.PoolGroup pools={len(self._pools)}>"


#: ``connections[conn]``: the connection pool for ``conn``'s broker(s).
connections: PoolGroup[ConnectionPool] = PoolGroup(
    lambda conn: ConnectionPool(conn, limit=DEFAULT_LIMIT)
)
#: ``producers[conn]``: the producer pool for ``conn``'s broker(s).
producers: PoolGroup[ProducerPool] = PoolGroup(lambda conn: ProducerPool(conn, limit=DEFAULT_LIMIT))


async def reset() -> None:
    """Close every pool of both groups (tests, shutdown)."""
    await connections.close()
    await producers.close()
