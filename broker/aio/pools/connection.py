"""Pools of asyncio connections: :class:`ConnectionPool`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.aio.pools.resource import ResourcePool
from broker.errors import ConnectionLimitExceeded

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["ConnectionPool"]


class ConnectionPool(ResourcePool["Connection"]):
    """Connections like ``connection`` (clones of it), connected on first use.

    Args:
        connection: the model; its clones are pooled, it is not.
        limit: the most connections in use at once.
    """

    def __init__(self, connection: Connection, limit: int | None = None) -> None:
        self.connection = connection
        super().__init__(
            self._connect, _connection_usable, _close_connection, limit,
            ConnectionLimitExceeded, connection.recoverable_connection_errors,
        )  # fmt: skip

    async def _connect(self) -> Connection:
        return await self.connection.clone().connect()


def _connection_usable(conn: Connection) -> bool:
    return conn.verify()


async def _close_connection(conn: Connection) -> None:
    await conn.close()
