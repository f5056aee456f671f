"""The asyncio AMQP transport class (registered as ``amqp``, ``pyamqp`` and ``amqps``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from transports import base, base_aio
from transports.amqp.aio.connection import AsyncAmqpConnection
from transports.amqp.transport import Transport as SyncTransport

__all__ = ["AsyncAmqpConnection", "AsyncTransport"]


class AsyncTransport(base_aio.AsyncTransport):
    """Opens :class:`~transports.amqp.aio.connection.AsyncAmqpConnection` objects."""

    name: ClassVar[str] = SyncTransport.name
    capabilities: ClassVar[base.Capabilities] = SyncTransport.capabilities

    async def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: base_aio.LostCallback | None = None,
    ) -> AsyncAmqpConnection:
        """Open a connection; see :meth:`transports.base_aio.AsyncTransport.connect`.

        Raises:
            broker.errors.ConfigurationError: invalid parameters (no I/O done).
            broker.errors.AuthenticationError: the broker refused the login.
            broker.errors.TLSVerificationError: the broker's certificate was rejected.
            broker.errors.RecoverableConnectionError: refused, reset, timed out.
        """
        conn = AsyncAmqpConnection(
            params, on_blocked=on_blocked, on_unblocked=on_unblocked, on_lost=on_lost
        )
        await conn.open()
        return conn
