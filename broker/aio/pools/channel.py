"""Pools of one asyncio connection's channels: :class:`ChannelPool`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.aio.pools.resource import ResourcePool
from broker.errors import ChannelLimitExceeded
from transports.base_aio import AsyncChannel

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["ChannelPool"]


class ChannelPool(ResourcePool[AsyncChannel]):
    """Channels of one connection, opened on first use.

    Args:
        connection: the :class:`broker.aio.Connection` the channels belong to.
        limit: the most channels in use at once.
    """

    def __init__(self, connection: Connection, limit: int | None = None) -> None:
        self.connection = connection
        super().__init__(
            connection.channel, _channel_usable, _close_channel, limit, ChannelLimitExceeded,
            connection.recoverable_channel_errors + connection.recoverable_connection_errors,
        )  # fmt: skip


def _channel_usable(channel: AsyncChannel) -> bool:
    return channel.is_open


async def _close_channel(channel: AsyncChannel) -> None:
    if channel.is_open:
        await channel.close()
