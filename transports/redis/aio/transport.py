"""The asyncio Redis transport class (registered as ``redis`` and ``rediss``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from transports import base, base_aio
from transports.redis.aio.connection import AsyncRedisConnection
from transports.redis.aio.link import AsyncLink
from transports.redis.options import settings
from transports.redis.transport import Transport as SyncTransport

__all__ = ["AsyncRedisConnection", "AsyncTransport"]


class AsyncTransport(base_aio.AsyncTransport):
    """Opens :class:`~transports.redis.aio.connection.AsyncRedisConnection` objects."""

    name: ClassVar[str] = SyncTransport.name
    capabilities: ClassVar[base.Capabilities] = SyncTransport.capabilities

    async def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: base_aio.LostCallback | None = None,
    ) -> AsyncRedisConnection:
        """Connect, start this connection's lease and sweep leases that ran out.

        ``params.connect_timeout`` bounds all of it: the TCP connect, TLS, the
        login, the database selection and the lease. Redis never blocks a
        connection: ``on_blocked`` and ``on_unblocked`` are never called.

        Raises:
            broker.errors.ConfigurationError: a bad option (before any I/O).
            broker.errors.AuthenticationError: Redis refused the password.
            broker.errors.TLSVerificationError: the server's certificate was rejected.
            broker.errors.TLSHandshakeError: TLS cannot work (e.g. the port answers in
                plain text).
            broker.errors.RecoverableConnectionError: refused, reset or timed out.
        """
        found = settings(params)
        host = f"[{params.hostname}]" if ":" in params.hostname else params.hostname
        link = AsyncLink(params, found, f"redis {host}:{params.port}/{found.db}")
        connection = AsyncRedisConnection(params, found, link, on_lost)
        await connection.open()
        return connection
