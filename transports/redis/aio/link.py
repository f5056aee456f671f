"""The redis.asyncio side of one asyncio Redis connection: clients, the broker script, pub/sub.

The asyncio sibling of :class:`transports.redis.driver.Link`, with the same
script (:data:`~transports.redis.driver.SCRIPT`), the same redis-py pool
settings (:func:`~transports.redis.options.client_kwargs`, redis-py's own
retries off) and the same error translation
(:func:`~transports.redis.driver.translate`). An :class:`AsyncLink` holds two
Redis connections from one ``redis.asyncio`` pool:

* the owner's, for every broker operation (tasks take turns on it: redis-py
  sends one command at a time on a single-connection client);
* a pub/sub connection, opened on the first subscription and read from then
  on by a task of the link's, which calls ``on_notified()`` for every "queue
  has messages" notification (no polling).

Cancellation: a caller cancelled while its reply is on the way makes
redis-py drop the owner's Redis connection (a reply is never left unread on
it); the next call opens a new one with the same login. The lease belongs to
the connection's id, not to a socket, so nothing else changes. An operation
whose result must not be lost (a ``basic_get`` that took a message) passes
an ``orphan`` callback: it then runs in a task of its own, shielded from the
caller's cancellation, and the callback gets the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from broker.errors import BrokerError, RecoverableConnectionError
from transports.base import ConnectionParams
from transports.base_aio import TimeSlice
from transports.redis.driver import SCRIPT, translate
from transports.redis.options import RedisSettings, client_kwargs
from transports.redis.redispy_internals import AsyncTLSConnection

__all__ = ["AsyncLink", "AsyncSubscriber", "Orphan"]

#: ``orphan(result)``: told the result of an operation whose caller was cancelled.
Orphan = Callable[[Any], None]


class AsyncSubscriber(Protocol):
    """What an :class:`AsyncLink` uses of redis.asyncio's ``PubSub``.

    Declared because some of those methods are not annotated in redis-py:
    assigning a ``PubSub`` to this type checks it against these signatures.
    """

    async def subscribe(self, *channels: str) -> None: ...

    def unsubscribe(self, *channels: str) -> Awaitable[Any]: ...

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> dict[str, Any] | None: ...

    async def aclose(self) -> None: ...


class AsyncLink:
    """The redis.asyncio clients of one connection (see the module docstring).

    Constructing it does no I/O; :meth:`open` connects.

    Attributes:
        where: ``redis host:port/db``, for messages.
        uid: this connection's name in Redis (its lease, its channels' owner).
        prefix: what every key and notification channel of this connection starts with.
        on_broken: called once with the error when the link is found broken.
        on_notified: called for every notification the pub/sub connection reads.
    """

    def __init__(self, params: ConnectionParams, found: RedisSettings, where: str) -> None:
        self.where = where
        self.settings = found
        self.uid = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.prefix = found.keyspace  # the script's first argument: the key layout's root
        self.on_broken: Callable[[BrokerError], None] | None = None
        self.on_notified: Callable[[], None] | None = None
        self._heartbeat = params.heartbeat
        self._connect_timeout = params.connect_timeout
        self._vhost = str(found.db)
        kwargs = client_kwargs(params, found)
        # Replies are waited for on the loop (asyncio.timeout in _translated), not by
        # redis-py: its socket_timeout costs a task per command sent (asyncio.wait_for).
        self._command_timeout: float = kwargs.pop("socket_timeout")
        kwargs["retry"] = Retry(NoBackoff(), 0)
        kwargs["driver_info"] = None  # no CLIENT SETINFO: two round trips per connect
        if found.tls is not None:
            kwargs["connection_class"] = AsyncTLSConnection
            kwargs["ssl_context"] = found.tls.context
            kwargs["server_hostname"] = found.tls.server_hostname
        self._pool = ConnectionPool(**kwargs)
        self.client = Redis(
            connection_pool=self._pool, single_connection_client=True, retry=kwargs["retry"]
        )
        self._script = self.client.register_script(SCRIPT)
        self._pubsub: AsyncSubscriber | None = None
        self._listener: asyncio.Task[None] | None = None
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._broken = False

    # -- connecting -----------------------------------------------------------------

    async def open(self) -> dict[str, Any]:
        """Connect and log in, start this connection's lease; return ``INFO server``.

        All of it within ``connect_timeout``.

        Raises:
            broker.errors.AuthenticationError, RecoverableConnectionError,
            TLSVerificationError, TLSHandshakeError: as
            :func:`~transports.redis.driver.translate` decides; a connect that
            outlasted ``connect_timeout`` is recoverable.
        """
        timeout = self._connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.client.initialize()  # connects and logs in
                await self._script(
                    args=(self.prefix, "connect", self._vhost, self.uid, self.settings.lease_ms)
                )
                info: dict[str, Any] = await self.client.info("server")
        except BaseException as exc:
            await self.close()  # never leave a half-open socket behind
            if isinstance(exc, TimeoutError) and not isinstance(exc, redis.RedisError):
                raise RecoverableConnectionError(
                    f"could not connect to {self.where} within connect_timeout={timeout:g} s "
                    "(TCP connect, TLS, login and setup together)"
                ) from None
            if isinstance(exc, redis.RedisError):
                raise translate(exc, self.where) from exc
            raise
        return info

    # -- operations -----------------------------------------------------------------

    async def call(self, op: str, *args: Any, orphan: Orphan | None = None) -> Any:
        """Run one broker operation on the owner's connection.

        Args:
            op: the script's operation; ``args`` its arguments.
            orphan: told the result if the caller is cancelled before it arrives
                (the operation is then shielded from the cancellation).

        Raises:
            broker.errors.BrokerError: translated; a broken link calls ``on_broken``.
        """
        request = self._translated(self._script(args=(self.prefix, op, self._vhost, *args)))
        if orphan is None:
            return await request
        task = asyncio.ensure_future(request)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(lambda done: _hand_over(done, orphan))
            raise

    async def hdel(self, key: str, *fields: int) -> int:
        """HDEL under the key prefix (the fast path of a single ack)."""
        return int(await self._translated(self.client.hdel(self.prefix + key, *fields)))

    async def replicas(self) -> int:
        """How many replicas are connected to this server now (``INFO replication``)."""
        info: dict[str, Any] = await self._translated(self.client.info("replication"))
        return int(info.get("connected_slaves", 0))

    async def wait_for_replicas(self, count: int, timeout: float) -> int:
        """``WAIT``: until the owner's writes so far reached ``count`` replicas, at most
        ``timeout`` seconds; how many replicas acknowledged them.

        Sent on the owner's connection, whose writes it waits for: every other
        call of the connection waits behind it (``timeout`` is at most half
        the command timeout, so none is taken for a dead server).
        """
        request = self.client.wait(count, max(1, round(timeout * 1000)))
        return int(await self._translated(request))

    async def _translated(self, request: Any) -> Any:
        """``request``'s result within the command timeout; redis-py's errors translated."""
        try:
            async with asyncio.timeout(self._command_timeout):
                return await request
        except redis.RedisError as exc:
            raise self.failed(exc) from exc
        except TimeoutError:  # the loop's timeout: redis-py dropped the connection under it
            late = redis.TimeoutError(f"no reply within {self._command_timeout:g} s")
            raise self.failed(late) from None
        except Exception as exc:
            if not self._broken:
                raise
            # Closed under this call (the connection tore down): redis-py may then fail
            # in its own bookkeeping, e.g. a KeyError releasing a connection its pool dropped.
            raise RecoverableConnectionError(
                f"{self.where}: the redis connection is closed"
            ) from exc

    async def _read(self, request: Any) -> Any:
        """``request``'s result, however long it takes; redis-py's errors translated."""
        try:
            return await request
        except redis.RedisError as exc:
            raise self.failed(exc) from exc

    def failed(self, exc: redis.RedisError) -> BrokerError:
        """The error for ``exc``; a broken link calls ``on_broken`` (once)."""
        error = translate(exc, self.where, self._heartbeat)
        if isinstance(error, RecoverableConnectionError):
            self.broke(error)
        return error

    def broke(self, error: BrokerError) -> None:
        """The link is unusable: tell ``on_broken`` (once)."""
        if self._broken:
            return
        self._broken = True
        if self.on_broken is not None:
            self.on_broken(error)

    # -- notifications --------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Subscribe to a notification channel; return once the server confirmed it.

        Until Redis confirms, a publish may not reach us: waiting means a
        message published after ``basic_consume`` returns always wakes us.

        Raises:
            broker.errors.RecoverableConnectionError: no confirmation within
                ``socket_timeout``, or the link broke.
        """
        pubsub = self._pubsub
        if pubsub is None:
            pubsub = self._pubsub = self.client.pubsub()  # a connection of its own, when used
        wanted = channel.encode()
        confirmed = self._confirming.get(wanted)
        if confirmed is None:
            confirmed = self._confirming[wanted] = asyncio.get_running_loop().create_future()
        try:
            await self._translated(pubsub.subscribe(channel))
            if self._listener is None:  # the pub/sub connection is open now: read it
                self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub))
            async with asyncio.timeout(self.settings.socket_timeout):
                await asyncio.shield(confirmed)
        except TimeoutError:
            error = RecoverableConnectionError(f"{self.where}: Redis did not confirm SUBSCRIBE")
            self.broke(error)
            raise error from None
        finally:
            if confirmed.done() and self._confirming.get(wanted) is confirmed:
                del self._confirming[wanted]

    async def unsubscribe(self, channel: str) -> None:
        """Stop notifications of one channel (not waited for)."""
        if self._pubsub is not None:
            await self._translated(self._pubsub.unsubscribe(channel))

    async def _listen(self, pubsub: AsyncSubscriber) -> None:
        # Notifications already read are parsed without waiting: yield now and then.
        time_slice = TimeSlice()
        try:
            while True:
                if time_slice.due():
                    await asyncio.sleep(0)
                message = await self._read(pubsub.get_message(timeout=None))
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message":
                    if self.on_notified is not None:
                        self.on_notified()
                elif kind == "subscribe":
                    confirmed = self._confirming.get(message["channel"])
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        except BrokerError as exc:
            self.broke(exc)  # the pub/sub connection is gone: so is the link

    # -- closing --------------------------------------------------------------------

    async def close(self, last: tuple[float, str, tuple[Any, ...]] | None = None) -> None:
        """Close every socket; first, if given, run ``last = (seconds, op, args)`` (errors ignored).

        Never raises; bounded by the connect timeout (or 2 s).
        """
        if last is not None:
            seconds, op, args = last
            with contextlib.suppress(BrokerError, TimeoutError):
                async with asyncio.timeout(max(seconds, 0.001)):
                    await self.call(op, *args)
        self._broken = True  # closing: nothing found broken from now on is news
        pubsub, self._pubsub = self._pubsub, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
        for future in self._confirming.values():
            future.cancel()
        self._confirming.clear()
        limit = self._connect_timeout if self._connect_timeout else 2.0
        with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
            async with asyncio.timeout(limit):
                if pubsub is not None:
                    await pubsub.aclose()
                await self.client.aclose()
                await self._pool.disconnect()

    def __repr__(self) -> str:
        return f"<AsyncLink {self.where} uid={self.uid}>"


def _hand_over(done: asyncio.Future[Any], orphan: Orphan | None) -> None:
    if done.cancelled():
        return
    exc = done.exception()  # retrieved, so that asyncio does not log it as never retrieved
    if exc is None and orphan is not None:
        orphan(done.result())
