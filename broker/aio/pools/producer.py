"""Pools of asyncio producers: :class:`ProducerPool`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.aio.pools.resource import ResourcePool
from broker.aio.producer import Producer
from broker.errors import ConnectionLimitExceeded

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["ProducerPool"]


class ProducerPool(ResourcePool["Producer"]):
    """Producers sharing one connection like ``connection`` (asyncio needs no more than one).

    Args:
        connection: the model; the pool connects a clone of it on first use.
        limit: the most producers in use at once.
    """

    def __init__(self, connection: Connection, limit: int | None = None, **options: Any) -> None:
        self.connection = connection.clone()
        self._options = options
        super().__init__(
            self._producer, _producer_usable, _close_producer, limit, ConnectionLimitExceeded
        )

    async def _producer(self) -> Producer:
        return Producer(self.connection, **self._options)

    async def close(self) -> None:
        """Close the producers and the shared connection."""
        await super().close()
        await self.connection.close()


def _producer_usable(producer: Producer) -> bool:
    return True  # a producer reopens its channel (and reconnects) when it publishes


async def _close_producer(producer: Producer) -> None:
    await producer.close()
