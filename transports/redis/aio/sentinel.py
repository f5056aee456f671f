"""``sentinel://`` on asyncio: the asyncio Redis transport on whatever master Sentinel names.

The sibling of :mod:`transports.redis.sentinel`, with its URLs, options
(``master_name``, ``sentinel_kwargs``), errors and rules: every connect asks
the current alternate's Sentinel where the master is (``SENTINEL MASTER``,
here with ``redis.asyncio``) and then connects there as ``redis://`` does,
``connect_timeout`` bounding both together. A Sentinel that is down, or that
takes the master for down, fails the attempt with a recoverable error, so
the retry loops move on to the next Sentinel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from broker.errors import RecoverableConnectionError
from transports import base, base_aio
from transports.redis.aio.connection import AsyncRedisConnection
from transports.redis.aio.link import AsyncLink
from transports.redis.aio.transport import AsyncTransport as AsyncRedisTransport
from transports.redis.options import settings
from transports.redis.sentinel import (
    OPTIONS,
    SentinelSettings,
    asker_kwargs,
    master_address,
    master_target,
    sentinel_error,
    sentinel_settings,
    sentinel_where,
)
from transports.redis.sentinel import Transport as SentinelTransport

__all__ = ["AsyncTransport", "ask_master"]


class _AsyncAsker(Protocol):
    """What :func:`ask_master` uses of a redis.asyncio client (not annotated in redis-py)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any: ...

    async def aclose(self) -> None: ...


async def ask_master(
    params: base.ConnectionParams, found: SentinelSettings, timeout: float | None
) -> tuple[str, int]:
    """Ask the Sentinel ``params`` names where its master ``found.master_name`` is.

    As :func:`transports.redis.sentinel.ask_master`, on the event loop.

    Raises:
        broker.errors.RecoverableConnectionError: the Sentinel is unreachable,
            did not answer within ``timeout``, or takes the master for down.
        broker.errors.AuthenticationError: the Sentinel refused ``sentinel_kwargs``.
        broker.errors.IrrecoverableConnectionError: the Sentinel monitors no
            master of that name.
    """
    where = sentinel_where(params)
    asker: _AsyncAsker = Redis(**asker_kwargs(params, found, timeout), retry=Retry(NoBackoff(), 0))
    try:
        async with asyncio.timeout(timeout):
            reply = await asker.execute_command("SENTINEL", "MASTER", found.master_name)
    except redis.RedisError as exc:
        raise sentinel_error(exc, where, found) from exc
    except TimeoutError:  # the loop's timeout (redis-py raises its own TimeoutError)
        limit = "" if timeout is None else f" within connect_timeout={timeout:g} s"
        raise RecoverableConnectionError(f"{where} did not answer{limit}") from None
    finally:
        await asker.aclose()
    return master_address(reply, where, found)


class AsyncTransport(AsyncRedisTransport):
    """Opens asyncio Redis connections to the master the Sentinels name."""

    name: ClassVar[str] = SentinelTransport.name
    capabilities: ClassVar[base.Capabilities] = SentinelTransport.capabilities

    async def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: base_aio.LostCallback | None = None,
    ) -> AsyncRedisConnection:
        """Ask the Sentinel for the master, then connect to it as ``redis://`` does.

        ``params.connect_timeout`` bounds both together. The connection's
        ``params`` name the master, so the façade's ``info()['node']`` does.

        Raises:
            broker.errors.ConfigurationError: a bad option (before any I/O).
            broker.errors.AuthenticationError: the Sentinel or the master refused the login.
            broker.errors.IrrecoverableConnectionError: no master of that name.
            broker.errors.RecoverableConnectionError: the Sentinel or the master is
                unreachable, the master is down or no master (any more).
        """
        found = settings(params, OPTIONS)
        asking = sentinel_settings(params)
        started = time.monotonic()
        master = await ask_master(params, asking, params.connect_timeout)
        target = master_target(params, asking, found.db, master, started)
        link = AsyncLink(target.link_params, found, target.where)
        connection = AsyncRedisConnection(target.params, found, link, on_lost)
        await connection.open()
        return connection
