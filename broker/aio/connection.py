"""The asyncio :class:`Connection` façade: the sibling of :class:`broker.Connection`.

Same constructor, options, URL parsing (:mod:`broker.url`), failover
strategies (:class:`~broker.connection.failover.Failover`), retry policy
(:data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`, driven by the coroutine
loops of :mod:`broker.aio.retry`), recovery record
(:class:`~broker.connection.recovery.Topology`, replayed by
:mod:`broker.aio.recovery`) and errors. What differs is how it waits:

* Nothing blocks the event loop; every wait is bounded by default and can be
  cancelled. Concurrent first uses connect once (one task connects, the
  others wait for it).
* Heartbeats run on the transport's loop timers; a silent peer breaks the
  link within about two intervals.
* A link lost while consumers are recorded is recovered in the background
  (reconnect, fail over, replay the record, revive the consumers); without
  consumers the next call reconnects, as on the synchronous side.
* Lifecycle hooks may be plain functions or coroutine functions
  (:mod:`broker.aio.hooks`).
* A connection and its channels belong to the event loop they were opened on.

Alternates may come from a ``resolver`` as on the synchronous side (the
:class:`~broker.connection.failover.Failover` asks it before the first
connect and after each full pass); it is called on the event loop, so it
should answer from memory -- say, a list a task of the application keeps
fresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

import transports
from broker.aio.consumer import Consumer
from broker.aio.hooks import Hooks
from broker.aio.pools import ChannelPool, ConnectionPool
from broker.aio.producer import Producer
from broker.aio.recovery import RevivableConsumer, replay
from broker.aio.retry import (
    AsyncErrback,
    AsyncRevivable,
    autoretried,
    connect_with_retry,
    ensured,
)
from broker.aio.simple import SimpleBuffer, SimpleQueue
from broker.connection.facts import ConnectionFacts, Resolver
from broker.connection.recovery import Topology
from broker.errors import ConfigurationError, ConnectionBlockedTimeout
from broker.retry.policy import RetryPolicy
from broker.url.targets import (
    Target,
    host_of,
    unknown_keywords_message,
)
from transports.base import Transport
from transports.base_aio import AsyncChannel, AsyncTransport, AsyncTransportConnection

__all__ = ["Connection"]

logger = logging.getLogger("broker.aio.connection")

R = TypeVar("R")
ConnectionHook = Callable[["Connection"], Any]

#: How long ``close()`` waits for the broker's close-ok before tearing down.
CLOSE_TIMEOUT = 2.0


class Connection(ConnectionFacts[AsyncTransportConnection]):
    """A lazy, failover-aware asyncio connection to a message broker.

    Takes exactly the arguments of :class:`broker.Connection` (see there);
    ``heartbeat_thread`` is accepted and has no effect: heartbeats run on
    the event loop. Hooks may be coroutine functions. ``resolver`` is a plain
    callable, asked on the event loop before the first connect and after
    each full pass over its last answer (see :mod:`broker.connection.failover`).
    Constructing a Connection performs no I/O and needs no running loop.
    """

    def __init__(
        self,
        hostname: str | Sequence[str] = "localhost",
        userid: str | None = None,
        password: str | None = None,
        virtual_host: str | None = None,
        port: int | None = None,
        ssl: Any = False,
        transport: str | type[Transport] | None = None,
        connect_timeout: float | None = 5,
        transport_options: Mapping[str, Any] | None = None,
        login_method: str | None = None,
        heartbeat: float = 0,
        failover_strategy: str | Callable[[Sequence[Any]], Any] = "round-robin",
        alternates: Sequence[str] | None = None,
        *,
        on_open: ConnectionHook | None = None,
        on_open_error: Callable[[Connection, BaseException], Any] | None = None,
        on_close: Callable[[Connection, BaseException | None], Any] | None = None,
        on_connect: ConnectionHook | Iterable[ConnectionHook] | None = None,
        on_blocked: Callable[[str], Any] | None = None,
        on_unblocked: Callable[[], Any] | None = None,
        blocked_connection_timeout: float | None = None,
        connection_name: str | None = None,
        client_properties: Mapping[str, Any] | None = None,
        heartbeat_thread: bool = True,
        resolver: Resolver | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ConfigurationError(unknown_keywords_message(kwargs))
        self._hooks: Hooks[Connection] = Hooks(
            on_open=on_open, on_open_error=on_open_error, on_close=on_close,
            on_connect=on_connect, on_blocked=on_blocked, on_unblocked=on_unblocked,
            blocked_timeout=blocked_connection_timeout,
            on_blocked_too_long=self._blocked_for_too_long,
        )  # fmt: skip
        super().__init__({
            "hostname": hostname, "userid": userid, "password": password,
            "virtual_host": virtual_host, "port": port, "ssl": ssl, "transport": transport,
            "connect_timeout": connect_timeout, "transport_options": transport_options,
            "login_method": login_method, "heartbeat": heartbeat,
            "failover_strategy": failover_strategy, "alternates": alternates,
            "on_open": on_open, "on_open_error": on_open_error, "on_close": on_close,
            "on_connect": on_connect, "on_blocked": on_blocked, "on_unblocked": on_unblocked,
            "blocked_connection_timeout": blocked_connection_timeout,
            "connection_name": connection_name, "client_properties": client_properties,
            "heartbeat_thread": heartbeat_thread, "resolver": resolver,
        })  # fmt: skip
        self._transports: dict[type[AsyncTransport], AsyncTransport] = {}
        self._default_channel: AsyncChannel | None = None
        self._connecting: asyncio.Lock | None = None
        self._topology = Topology()
        self._consumers: dict[int, RevivableConsumer] = {}
        self._declared: set[Any] = set()
        self._connect_count = 0
        self._recovery: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one it connected on

    def _targets(
        self, hostname: str | Sequence[str], alternates: Sequence[str] | None
    ) -> tuple[Target, ...]:
        """The brokers named, as on the synchronous side; each must have an asyncio transport."""
        targets = super()._targets(hostname, alternates)
        for target in targets:
            transports.resolve_async(target.url.scheme)  # fail early: no asyncio transport
        return targets

    # -- state and description ------------------------------------------------------

    def verify(self) -> bool:
        """Liveness check without I/O: False when closed or known broken."""
        return self._conn is not None and self._conn.verify()

    @property
    def transport(self) -> AsyncTransport:
        """The asyncio transport of the current alternate."""
        cls = transports.resolve_async(self._failover.current.url.scheme)
        transport = self._transports.get(cls)
        if transport is None:
            transport = self._transports[cls] = cls()
        return transport

    @property
    def transport_connection(self) -> AsyncTransportConnection | None:
        """The live transport-level connection, if any."""
        return self._conn

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closing" if self._closing else "closed"
        count = len(self._failover)
        extra = f" alternates={count}" if count > 1 else ""
        return f"<aio.Connection {self.as_uri()} {state}{extra} at {id(self):#x}>"

    # -- alternates -----------------------------------------------------------------

    async def switch(self, url: str) -> None:
        """Close the current connection and use ``url`` (and only it) from now on."""
        await self.close()
        self._init_args = dict(self._init_args, hostname=url, alternates=None, resolver=None)
        self._failover = self._make_failover()

    def add_callback_threadsafe(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (a plain or coroutine function) on this connection's event loop.

        Safe from any thread: how a worker thread acks a message it was given,
        ``conn.add_callback_threadsafe(message.ack)``.

        Raises:
            ConfigurationError: the connection has not connected yet (it has no loop).
        """
        loop = self._loop
        if loop is None:
            raise ConfigurationError(f"{self!r} has no event loop yet: connect it first")
        loop.call_soon_threadsafe(self._hooks.run_soon, fn)

    # -- hooks and blocking -------------------------------------------------------------

    @property
    def on_open(self) -> list[ConnectionHook]:
        """``on_open(conn)`` hooks (plain or async), run after every successful connect."""
        return self._hooks.lists.on_open

    @property
    def on_open_error(self) -> list[Callable[[Connection, BaseException], Any]]:
        """``on_open_error(conn, exc)`` hooks, run when a connect gives up."""
        return self._hooks.lists.on_open_error

    @property
    def on_close(self) -> list[Callable[[Connection, BaseException | None], Any]]:
        """``on_close(conn, exc)`` hooks; ``exc`` is ``None`` for :meth:`close`."""
        return self._hooks.lists.on_close

    @property
    def on_connect(self) -> list[ConnectionHook]:
        """``on_connect(conn)`` hooks, run after every (re)connect and recovery."""
        return self._hooks.lists.on_connect

    @property
    def on_blocked(self) -> list[Callable[[str], Any]]:
        """``on_blocked(reason)`` hooks, run on ``connection.blocked``."""
        return self._hooks.lists.on_blocked

    @property
    def on_unblocked(self) -> list[Callable[[], Any]]:
        """``on_unblocked()`` hooks, run on ``connection.unblocked``."""
        return self._hooks.lists.on_unblocked

    @property
    def is_blocked(self) -> bool:
        """Whether the broker currently blocks this connection."""
        return self._hooks.is_blocked

    def _blocked(self, reason: str) -> None:
        logger.warning("connection to %s blocked by the broker: %s", self.as_uri(), reason)
        self._hooks.blocked(reason)

    def _unblocked(self) -> None:
        logger.info("connection to %s unblocked", self.as_uri())
        self._hooks.unblocked()

    def _blocked_for_too_long(self, limit: float) -> None:
        self._link_lost(
            ConnectionBlockedTimeout(
                f"connection to {self.as_uri()} blocked by the broker for more than {limit:g} s"
            )
        )

    # -- the recovery record --------------------------------------------------------------

    @property
    def declared_entities(self) -> set[Any]:
        """Keys of entities declared on the current link (cleared on reconnect)."""
        return self._declared

    @property
    def topology(self) -> Topology:
        """The record of declared entities replayed after reconnects."""
        return self._topology

    def record_consumer(self, consumer: RevivableConsumer) -> None:
        """Remember a consuming consumer (held strongly) for revival after reconnects."""
        self._consumers[id(consumer)] = consumer

    def forget_consumer(self, consumer: RevivableConsumer) -> None:
        """Drop a consumer (it was cancelled or closed)."""
        self._consumers.pop(id(consumer), None)

    @property
    def consumers(self) -> list[RevivableConsumer]:
        """Recorded consumers in the order they started."""
        return list(self._consumers.values())

    # -- connecting -------------------------------------------------------------------

    async def connect(self) -> Connection:
        """Connect now (per :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`) and return self."""
        return await self.ensure_connection()

    async def ensure_connection(
        self,
        errback: AsyncErrback | None = None,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        callback: Callable[[], Any] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Connection:
        """Connect, retrying and failing over until it works or the budget is spent.

        Same budget and keywords as :meth:`broker.Connection.ensure_connection`
        (a keyword left out takes kombu's connect-retry setting of the same
        name from :attr:`transport_options`, when there is one). Concurrent
        callers share one attempt.

        Raises:
            OperationalError: the budget ran out (the last error is ``__cause__``).
            AuthenticationError, TLSVerificationError: at once, never retried.
        """
        if self.connected:
            return self
        if policy is None:
            defaults = self._connect_retry
            policy = RetryPolicy.from_intervals(
                defaults.get("max_retries") if max_retries is None else max_retries,
                defaults.get("interval_start") if interval_start is None else interval_start,
                defaults.get("interval_step") if interval_step is None else interval_step,
                defaults.get("interval_max") if interval_max is None else interval_max,
                defaults.get("timeout") if timeout is None else timeout,
            )
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                return self
            try:
                await connect_with_retry(self, policy.begin(), errback=errback, callback=callback)
            except Exception as exc:
                await self._hooks.open_failed(self, exc)
                raise
        return self

    async def connect_once(self, timeout: float | None = None) -> None:
        """One connect attempt to the current alternate: no retry, no failover.

        After the link opens, the ``on_open`` hooks run, the recovery record is
        replayed (on a reconnect, consumers included) and the ``on_connect``
        hooks run; if any of that fails, the link is dropped and the error raised.
        """
        self._failover.refresh()
        target = self._failover.current
        params = target.params
        if timeout is not None and (
            params.connect_timeout is None or params.connect_timeout > timeout
        ):
            params = replace(params, connect_timeout=max(timeout, 0.01))
        conn = await self.transport.connect(
            params, on_blocked=self._blocked, on_unblocked=self._unblocked,
            on_lost=self._link_lost,
        )  # fmt: skip
        self._conn, self._closing = conn, False
        # Where the transport actually got to (a Sentinel names the master).
        self._node = host_of(conn.params)
        self._loop = asyncio.get_running_loop()
        reconnect = self._connect_count > 0
        self._connect_count += 1
        logger.info("connected to %s", target.as_uri())
        try:
            await self._hooks.opened(self)
            if reconnect:
                await replay(self, self._topology, self.consumers)
            await self._hooks.connected(self)
        except BaseException as exc:
            await self._drop(exc, fail_over=False)
            raise

    async def connection_lost(self, exc: BaseException) -> None:
        """Drop the link broken by ``exc`` (no handshake) and move to the next alternate."""
        await self._drop(exc)

    def _link_lost(self, exc: BaseException) -> None:
        # Called by the transport on the loop when the link broke under nobody's call.
        conn = self._conn
        if conn is None:
            return
        self._forget_link()
        conn.teardown()
        logger.warning("connection to %s lost: %s", self.as_uri(), exc)
        self._hooks.closed_soon(self, exc)
        self._failover.advance()
        if self._consumers and not self._closing and self._recovery is None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        try:
            await self.ensure_connection()
        except Exception as exc:
            logger.error("could not recover the connection to %s: %s", self.as_uri(), exc)
            for consumer in self.consumers:
                consumer.recovery_failed(exc)
        finally:
            self._recovery = None

    def _forget_link(self) -> None:
        self._conn = None
        self._default_channel = None
        self._declared.clear()
        self._hooks.link_gone()

    async def _connection(self) -> AsyncTransportConnection:
        """The live transport connection, connecting implicitly (bounded) if needed."""
        conn = self._conn
        if conn is None or not conn.is_open:
            if conn is not None:
                await self._drop(conn.failure)
            await self.connect()
            conn = self._conn
            assert conn is not None
        return conn

    async def _drop(self, exc: BaseException | None, *, fail_over: bool = True) -> None:
        """Tear the link down without a handshake and notify; with an error, fail over."""
        conn = self._conn
        self._forget_link()
        if conn is not None:
            conn.teardown()
            if exc is not None:
                logger.warning("connection to %s lost: %s", self.as_uri(), exc)
            await self._hooks.closed(self, exc)
        if exc is not None and fail_over:
            self._failover.advance()

    # -- channels and events -------------------------------------------------------------

    async def channel(self) -> AsyncChannel:
        """Open a new channel (connecting first if needed)."""
        conn = await self._connection()
        return await self._guard(conn.channel(owner=self))

    async def default_channel(self) -> AsyncChannel:
        """A channel shared by simple uses of this connection, reopened when closed."""
        channel = self._default_channel
        if channel is None or not channel.is_open or not self.connected:
            channel = await self.channel()
            if self._default_channel is None or not self._default_channel.is_open:
                self._default_channel = channel
            else:  # another task opened one meanwhile: share it
                await channel.close()
                channel = self._default_channel
        return channel

    async def replacement_channel(self, old: AsyncChannel | None) -> AsyncChannel:
        """A working channel to replace ``old`` (the default channel if ``old`` was it)."""
        if old is None or old is self._default_channel or self._default_channel is None:
            return await self.default_channel()
        return await self.channel()

    async def drain_events(self, timeout: float | None = None) -> None:
        """Wait until the next event (a delivery, a confirm) was dispatched.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            RecoverableConnectionError: the link broke (the connection is dropped).
        """
        conn = await self._connection()
        await self._guard(conn.drain_events(timeout))

    async def _guard(self, call: Awaitable[R]) -> R:
        """Await a transport call; a recoverable connection error drops the connection."""
        try:
            return await call
        except self.recoverable_connection_errors as exc:
            await self._drop(exc)
            raise

    # -- retrying ------------------------------------------------------------------------

    def ensure(
        self,
        obj: AsyncRevivable,
        fun: Callable[..., Awaitable[R]],
        errback: AsyncErrback | None = None,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        on_revive: Callable[[AsyncChannel], Any] | None = None,
        retry_errors: tuple[type[BaseException], ...] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Callable[..., Awaitable[R]]:
        """Wrap the coroutine function ``fun`` so recoverable errors are retried.

        As :meth:`broker.Connection.ensure`; ``obj.revive(channel)`` is awaited.
        """
        if policy is None:
            policy = RetryPolicy.from_intervals(
                max_retries, interval_start, interval_step, interval_max, timeout
            )
        if retry_errors:
            policy = policy.replace(on=policy.on + tuple(retry_errors))
        return ensured(self, obj, fun, policy, errback=errback, on_revive=on_revive)

    def autoretry(
        self,
        fun: Callable[..., Awaitable[R]],
        channel: AsyncChannel | None = None,
        **opts: Any,
    ) -> Callable[..., Awaitable[tuple[R, AsyncChannel]]]:
        """Wrap ``fun(*args, channel=..., **kw)``; the wrapper returns ``(retval, channel)``."""
        revivable, call = autoretried(self, fun, channel)
        return self.ensure(revivable, call, **opts)

    # -- factories (kombu's names) -----------------------------------------------------------

    def Producer(self, channel: AsyncChannel | None = None, **kwargs: Any) -> Producer:
        """A :class:`broker.aio.Producer` on ``channel`` (or on this connection)."""
        return Producer(self, channel=channel, **kwargs)

    def Consumer(
        self, queues: Any = None, channel: AsyncChannel | None = None, **kwargs: Any
    ) -> Consumer:
        """A :class:`broker.aio.Consumer` on ``channel`` (or on this connection)."""
        return Consumer(self, queues, channel=channel, **kwargs)

    def SimpleQueue(self, name: Any, **kwargs: Any) -> SimpleQueue:
        """A :class:`broker.aio.SimpleQueue` named ``name`` (or a Queue object)."""
        return SimpleQueue(self, name, **kwargs)

    def SimpleBuffer(self, name: Any, **kwargs: Any) -> SimpleBuffer:
        """A transient, auto-deleting :class:`broker.aio.SimpleBuffer`."""
        return SimpleBuffer(self, name, **kwargs)

    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        """A pool of connections like this one (see :class:`broker.aio.pools.ConnectionPool`)."""
        return ConnectionPool(self, limit=limit, **kwargs)

    def ChannelPool(self, limit: int | None = None, **kwargs: Any) -> ChannelPool:
        """A pool of channels on this connection (see :class:`broker.aio.pools.ChannelPool`)."""
        return ChannelPool(self, limit=limit, **kwargs)

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Close gracefully (bounded by a deadline). Safe to call twice."""
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            recovery.cancel()
        conn = self._conn
        self._forget_link()
        if conn is None:
            return
        self._closing = True
        try:
            await conn.close(timeout=CLOSE_TIMEOUT)
        finally:
            self._closing = False
            logger.info("closed connection to %s", self.as_uri())
            await self._hooks.closed(self, None)

    release = close

    def collect(self) -> None:
        """Drop the connection at once without any handshake (for broken links)."""
        conn = self._conn
        self._forget_link()
        if conn is not None:
            conn.teardown()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
