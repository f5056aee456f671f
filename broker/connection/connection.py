"""The :class:`Connection` façade.

One class, holding the live transport connection and a few collaborators
with their own state, each in its own module:

* :class:`~broker.connection.failover.Failover` -- the alternate brokers, the
  one in use, and the order to move along them;
* :class:`~broker.connection.heartbeat.HeartbeatDriver` -- the heartbeat thread;
* :class:`~broker.connection.callbacks.LifecycleCallbacks` -- the lifecycle
  hooks, cross-thread callbacks and the broker-blocked state;
* :class:`~broker.connection.recovery.Topology` -- the recovery record.

Threads may share one Connection, each with channels of its own (see
``docs/architecture.rst``, "Threads"). Connecting, dropping a broken link and
making the default channel happen under one lock (:attr:`Connection._link_lock`,
reentrant: the hooks a connect runs may open channels), so a link lost under
N threads is dropped once, moves to the next alternate once, and is replaced
once: a thread holding an error from a link another thread already replaced
leaves the new link alone.

URL work is done by :mod:`broker.url`, retrying by :mod:`broker.retry` (the
loops in :mod:`broker.retry.ensure` drive the connection through its
:class:`~broker.retry.ensure.Reconnectable` methods), transport work by the
:mod:`transports` registry. Entities, producers and consumers use the
connection through :class:`~broker.entities.owner.ChannelOwner`, which it
inherits. Pools and messaging sit above: the factory methods import them
when called.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from broker.connection.callbacks import LifecycleCallbacks
from broker.connection.facts import ConnectionFacts, Resolver
from broker.connection.heartbeat import HeartbeatDriver
from broker.connection.recovery import Topology
from broker.entities.owner import ChannelOwner
from broker.errors import ConfigurationError, ConnectionBlockedTimeout
from broker.retry import ensure as _ensure
from broker.retry.policy import RetryPolicy
from broker.timeouts import check_timeout
from broker.url.targets import (
    host_of,
    unknown_keywords_message,
)
from transports.base import Channel, ConfirmingChannel, Transport, TransportConnection

if TYPE_CHECKING:
    from broker.messaging.consumer import Consumer
    from broker.messaging.producer import Producer
    from broker.messaging.simple import SimpleBuffer, SimpleQueue
    from pools import ChannelPool, ConnectionPool

__all__ = ["Connection"]

logger = logging.getLogger("broker.connection")

R = TypeVar("R")
ConnectionHook = Callable[["Connection"], Any]
#: How long ``close()`` waits for the broker's close-ok before tearing down.
CLOSE_TIMEOUT = 2.0
#: Longest single wait inside ``drain_events``, so that callbacks queued with
#: ``add_callback_threadsafe`` and the blocked-connection deadline are served.
_DRAIN_SLICE = 0.25


class Connection(ConnectionFacts[TransportConnection], ChannelOwner):
    """A lazy, failover-aware connection to a message broker.

    Args:
        hostname: a URL, ``'url1;url2'``, a list of URLs, or a bare host name.
        userid, password, virtual_host, port: defaults for what a URL leaves out.
        ssl: ``False``, ``True``, a dict of TLS options or an ``ssl.SSLContext``.
        transport: transport name (or class) for URLs without a scheme.
        connect_timeout: seconds allowed for one connect attempt.
        transport_options: transport-specific options (copied, never mutated).
        login_method: SASL mechanism, e.g. ``'PLAIN'`` or ``'EXTERNAL'``.
        heartbeat: requested heartbeat interval in seconds; 0 turns it off.
        failover_strategy: ``'round-robin'``, ``'shuffle'`` or a callable that
            takes the list of URLs and returns an iterator over them.
        alternates: more URLs to fail over to.
        on_open, on_open_error, on_close, on_connect, on_blocked, on_unblocked:
            lifecycle callbacks; see ``docs/failover.rst``.
        blocked_connection_timeout: seconds a connection may stay blocked by
            the broker before library calls raise ``ConnectionBlockedTimeout``.
        connection_name: shown in the broker's management UI.
        client_properties: extra AMQP client properties.
        heartbeat_thread: send heartbeats from a background thread so that a
            busy owner thread is never disconnected (default ``True``).
        resolver: a callable returning the current broker URLs (a cluster's
            nodes, say from service discovery), asked before the first connect
            and again whenever every URL of its last answer was tried; its
            answer replaces ``hostname`` and ``alternates``, which are used
            until then and whenever it fails (see
            :mod:`broker.connection.failover`).

    Constructing a Connection performs no I/O: it connects on first use,
    retrying per :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`.
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
        self._callbacks: LifecycleCallbacks[Connection] = LifecycleCallbacks(
            on_open=on_open, on_open_error=on_open_error, on_close=on_close,
            on_connect=on_connect, on_blocked=on_blocked, on_unblocked=on_unblocked,
            blocked_timeout=blocked_connection_timeout,
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
        self._heartbeats = HeartbeatDriver(enabled=heartbeat_thread)
        self._topology: Topology | None = None
        self._transports: dict[type[Transport], Transport] = {}
        self._default_channel: Channel | None = None
        # Set by close(), cleared by the next connect: ``.connection`` is then None
        # rather than connecting again (kombu's rule).
        self._released = False
        self._connect_count = 0
        self._declared: set[Any] = set()
        self._link_lock = threading.RLock()
        self._attempts = threading.local()  # .link: the link this thread's attempt started on

    # -- state and description -------------------------------------------------------

    def verify(self) -> bool:
        """Non-blocking liveness check: False when closed or known broken."""
        conn = self._conn
        return conn is not None and conn.verify()

    # kombu's attributes; like ``hostname`` they describe the current alternate,
    # with the transport's defaults filled in.

    @property
    def transport(self) -> Transport:
        """The transport of the current alternate."""
        cls = self._failover.current.transport_cls
        transport = self._transports.get(cls)
        if transport is None:
            transport = self._transports[cls] = cls()
        return transport

    @property
    def transport_connection(self) -> TransportConnection | None:
        """The live transport-level connection, if any (never connects)."""
        return self._conn

    @property
    def connection(self) -> TransportConnection | None:
        """The underlying transport connection, connecting on first access (kombu's attribute).

        ``None`` after :meth:`close` -- reading it does not reconnect a closed
        Connection; :meth:`connect`, :meth:`channel` and
        :attr:`default_channel` do. Otherwise a missing or broken link is
        replaced by an implicit connect, bounded like every other one.

        Raises:
            OperationalError: the connect ran out of its budget (the last
                error is ``__cause__``).
            AuthenticationError, TLSVerificationError: at once, never retried.
        """
        if self._released:
            return None
        return self._connection()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closing" if self._closing else "closed"
        count = len(self._failover)
        extra = f" alternates={count}" if count > 1 else ""
        return f"<Connection {self.as_uri()} {state}{extra} at {id(self):#x}>"

    # -- alternates -------------------------------------------------------------------

    def switch(self, url: str) -> None:
        """Close the current connection and use ``url`` (and only it) from now on."""
        self.close()
        self._init_args = dict(self._init_args, hostname=url, alternates=None, resolver=None)
        self._failover = self._make_failover()

    # -- lifecycle hooks and threads ----------------------------------------------------

    @property
    def on_open(self) -> list[ConnectionHook]:
        """``on_open(conn)`` hooks, run after every successful connect."""
        return self._callbacks.on_open

    @property
    def on_open_error(self) -> list[Callable[[Connection, BaseException], Any]]:
        """``on_open_error(conn, exc)`` hooks, run when a connect gives up."""
        return self._callbacks.on_open_error

    @property
    def on_close(self) -> list[Callable[[Connection, BaseException | None], Any]]:
        """``on_close(conn, exc)`` hooks; ``exc`` is ``None`` for :meth:`close`."""
        return self._callbacks.on_close

    @property
    def on_connect(self) -> list[ConnectionHook]:
        """``on_connect(conn)`` hooks, run after every (re)connect and recovery."""
        return self._callbacks.on_connect

    @property
    def on_blocked(self) -> list[Callable[[str], Any]]:
        """``on_blocked(reason)`` hooks, run on ``connection.blocked``."""
        return self._callbacks.on_blocked

    @property
    def on_unblocked(self) -> list[Callable[[], Any]]:
        """``on_unblocked()`` hooks, run on ``connection.unblocked``."""
        return self._callbacks.on_unblocked

    @property
    def is_blocked(self) -> bool:
        """Whether the broker currently blocks this connection (``connection.blocked``)."""
        return self._callbacks.is_blocked

    def add_callback_threadsafe(self, fn: Callable[[], Any]) -> None:
        """Schedule ``fn`` to run on the thread that drains the connection.

        That is the thread that connected until another thread calls
        :meth:`drain_events`, then the thread that drained last (pika's model:
        the thread serving the connection's events). ``drain_events`` serves
        queued callbacks at least every 0.25 s. Acks no longer need it:
        ``message.ack()`` works from any thread.
        """
        self._callbacks.add_threadsafe(fn)

    def run_pending_callbacks(self) -> None:
        """Run the callbacks queued by :meth:`add_callback_threadsafe`, if on the owning thread.

        Library calls do this themselves; call it when the owner is busy in
        its own loop and makes no library call for a while. The retry loops
        call it before every attempt, and it notes, per thread, the link the
        attempt starts on (so :meth:`connection_lost` knows which link failed).
        """
        self._attempts.link = self._conn
        self._callbacks.run_pending()

    def _on_blocked(self, reason: str) -> None:
        logger.warning("connection to %s blocked by the broker: %s", self.as_uri(), reason)
        self._callbacks.blocked(reason)

    def _on_unblocked(self) -> None:
        logger.info("connection to %s unblocked", self.as_uri())
        self._callbacks.unblocked()

    def _check_blocked(self) -> None:
        limit = self._callbacks.blocked_too_long()
        if limit is not None:
            exc = ConnectionBlockedTimeout(
                f"connection to {self.as_uri()} blocked by the broker for more than {limit:g} s"
            )
            self._drop(exc)
            raise exc

    # -- the recovery record ------------------------------------------------------------

    @property
    def declared_entities(self) -> set[Any]:
        """Keys of entities declared on the current connection (cleared on reconnect)."""
        return self._declared

    @property
    def topology(self) -> Topology:
        """The record of declared entities and consumers replayed after reconnects."""
        if self._topology is None:
            self._topology = Topology()
        return self._topology

    # -- connecting -------------------------------------------------------------------

    def connect(self) -> Connection:
        """Connect now (per :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`) and return self."""
        return self.ensure_connection()

    def ensure_connection(
        self,
        errback: _ensure.Errback | None = None,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        callback: Callable[[], None] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Connection:
        """Connect, retrying and failing over until it works or the budget is spent.

        The budget is :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`; the
        keywords override what they give (``max_retries=N`` means N + 1
        attempts, ``timeout=math.inf`` no deadline), or ``policy`` replaces it.
        A keyword left out takes kombu's connect-retry setting of the same
        name from :attr:`transport_options`, when there is one.
        ``errback(exc, interval)`` runs before each retry; ``callback()`` about
        once a second while waiting.

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
        with self._link_lock:
            if self.connected:
                return self  # another thread connected meanwhile
            try:
                _ensure.connect_with_retry(self, policy.begin(), errback=errback, callback=callback)
            except BaseException as exc:
                self._callbacks.open_failed(self, exc)
                raise
        return self

    def connect_once(self, timeout: float | None = None) -> None:
        """One connect attempt to the current alternate: no retry, no failover.

        The building block of the retry loops (:mod:`broker.retry.ensure`):
        the attempt's own timeout is cut to ``timeout`` seconds. After the
        link opens, the ``on_open`` hooks run, the recovery record is replayed
        (on a reconnect) and the ``on_connect`` hooks run; if any of that
        fails, the link is dropped again and the error raised. With a live
        link already (another thread connected first) it does nothing, so
        threads recovering from one lost link make one new link.
        """
        with self._link_lock:
            if not self.connected:
                self._connect_once(timeout)

    def _connect_once(self, timeout: float | None) -> None:
        self._failover.refresh()
        target = self._failover.current
        params = target.params
        if timeout is not None and (
            params.connect_timeout is None or params.connect_timeout > timeout
        ):
            params = replace(params, connect_timeout=max(timeout, 0.01))
        conn = self.transport.connect(
            params, on_blocked=self._on_blocked, on_unblocked=self._on_unblocked
        )
        self._conn, self._closing, self._released = conn, False, False
        # Where the transport actually got to (a Sentinel names the master).
        self._node = host_of(conn.params)
        reconnect = self._connect_count > 0
        self._connect_count += 1
        self._heartbeats.start(conn, target.host)
        logger.info("connected to %s", target.as_uri())
        try:
            self._callbacks.opened(self)
            if reconnect and self._topology is not None:
                self._topology.replay(self)
            self._callbacks.connected(self)
        except BaseException as exc:
            # A half-recovered connection is no connection: drop it so the
            # retry loop (or the caller) starts from a clean state; the loop
            # itself decides whether to move on to the next alternate.
            self._drop(exc, fail_over=False)
            raise

    def connection_lost(self, exc: BaseException) -> None:
        """Drop the link broken by ``exc`` at once (no handshake) and move to the next alternate.

        The ``on_close`` hooks run with ``exc``; the next connect, implicit or
        explicit, starts with the next alternate. When the link the failed
        attempt started on (see :meth:`run_pending_callbacks`) is already gone,
        replaced by another thread, nothing happens: a link lost under N
        threads is dropped, and failed over, once.
        """
        started_on = getattr(self._attempts, "link", None)
        with self._link_lock:
            conn = self._conn
            if conn is not None:
                self._drop(exc, failed=started_on if started_on is not None else conn)

    def _connection(self) -> TransportConnection:
        """The live transport connection, connecting implicitly (bounded) if needed."""
        conn = self._conn
        if conn is None or not conn.is_open:
            with self._link_lock:
                conn = self._conn
                if conn is not None and not conn.is_open:
                    # Broken under a channel call: the hooks get the error that broke it,
                    # and the next connect starts with the next alternate.
                    self._drop(conn.failure, failed=conn)
                if not self.connected:
                    self.connect()
                conn = self._conn
                assert conn is not None
        return conn

    def _drop(
        self,
        exc: BaseException | None,
        *,
        fail_over: bool = True,
        failed: TransportConnection | None = None,
    ) -> None:
        """Tear the link down without a handshake and notify; with an error, fail over.

        ``failed``: the link the error came from; when another link has
        replaced it meanwhile (another thread reconnected), nothing is dropped.
        """
        with self._link_lock:
            if failed is not None and self._conn is not failed:
                return
            conn, self._conn = self._conn, None
            self._heartbeats.stop()
            self._default_channel = None
            self._declared.clear()
            if conn is not None:
                conn.teardown()
                if exc is not None:
                    logger.warning("connection to %s lost: %s", self.as_uri(), exc)
                self._callbacks.closed(self, exc)
            if exc is not None and fail_over:
                # The host that just failed goes to the back of the line: the next
                # connect (implicit or explicit) starts with the next alternate.
                self._failover.advance()

    # -- channels and events ----------------------------------------------------------

    def channel(self) -> Channel:
        """Open a new channel (connecting first if needed). Use it as a context manager.

        Safe from any thread; the channel is for one thread at a time.
        """
        self._callbacks.run_pending()
        conn = self._connection()
        return self._guard(conn, lambda: conn.channel(owner=self))

    @property
    def default_channel(self) -> Channel:
        """A channel shared by simple uses of this connection, reopened when closed.

        Like every channel it is for one thread at a time: threads sharing the
        connection take channels of their own (``channel()``, a ``ChannelPool``).
        """
        channel = self._default_channel
        if channel is None or not channel.is_open or not self.connected:
            with self._link_lock:
                channel = self._default_channel
                if channel is None or not channel.is_open or not self.connected:
                    channel = self._default_channel = self.channel()
        return channel

    def replacement_channel(self, old: Channel | None) -> Channel:
        """A working channel to replace ``old`` (the default channel if ``old`` was it)."""
        if old is None or old is self._default_channel or self._default_channel is None:
            return self.default_channel
        return self.channel()

    def drain_events(self, timeout: float | None = None) -> None:
        """Wait for one event and dispatch it.

        Threads may drain one connection at once; each gets the events of the
        channels it used last (its consumers' deliveries, its returns), and
        the deliveries of consumers whose thread does not drain. The thread
        draining also runs the callbacks queued with
        :meth:`add_callback_threadsafe`.

        Args:
            timeout: the most seconds to wait; ``None`` (or ``math.inf``) waits
                without a limit.

        Raises:
            TimeoutError: (``socket.timeout``) nothing arrived within ``timeout``.
            ConnectionBlockedTimeout: blocked longer than ``blocked_connection_timeout``.
            RecoverableConnectionError: the link broke (the connection is dropped).
            ConfigurationError: ``timeout`` is not ``None`` or a number of seconds >= 0
                (``nan``, a string), before anything is read.
        """
        timeout = check_timeout(timeout)
        conn = self._conn
        if conn is None or not conn.is_open:
            conn = self._connection()
        self._drain(conn, conn.drain_events, timeout, self._callbacks.drain_starting())

    def wait_confirms(self, channel: ConfirmingChannel, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``channel``'s next confirms and dispatch them here.

        What a thread publishing with confirms waits with: the acks, nacks and
        returns of its channel are dispatched on it, other threads' events are
        left to them. Blocked and lost connections are handled as in
        :meth:`drain_events`.

        Raises:
            TimeoutError: nothing arrived for the channel in time.
            ConnectionBlockedTimeout, RecoverableConnectionError: as :meth:`drain_events`.
        """
        seconds = check_timeout(timeout)
        conn = self._conn
        if conn is None or not conn.is_open:
            conn = self._connection()
        self._drain(conn, channel.wait_confirms, seconds)

    def _drain(
        self,
        conn: TransportConnection,
        read: Callable[[float], None],
        timeout: float | None,
        attention: bool = True,
    ) -> None:
        """Call ``read(seconds)`` in slices until it returns, or ``timeout`` passes.

        ``attention=False`` says no callback was queued and the connection was
        not blocked a moment ago, so the first slice reads at once; later
        slices look again.
        """
        callbacks = self._callbacks
        # Waits are sliced so callbacks queued from other threads run and a
        # blocked connection is noticed; the first slice needs no clock read.
        wait = _DRAIN_SLICE
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + timeout
            if timeout < wait:
                wait = timeout
        while True:
            if attention:
                if callbacks.has_pending:
                    callbacks.run_pending()
                    if deadline is not None:  # the time they took counts
                        wait = min(_DRAIN_SLICE, deadline - time.monotonic())
                if callbacks.is_blocked:
                    self._check_blocked()
            if wait <= 0:
                raise TimeoutError("timed out")
            try:
                read(wait)
                return
            except TimeoutError:
                attention = True
                if deadline is not None:
                    wait = min(_DRAIN_SLICE, deadline - time.monotonic())
            except self.recoverable_connection_errors as exc:
                self._drop(exc, failed=conn)
                raise

    def _guard(self, conn: TransportConnection, call: Callable[[], R]) -> R:
        """Run a call on ``conn``; a recoverable connection error drops that link."""
        try:
            return call()
        except self.recoverable_connection_errors as exc:
            self._drop(exc, failed=conn)
            raise

    def heartbeat_check(self, rate: int = 2) -> None:
        """kombu compatibility: send a heartbeat if due, raise if the peer went silent."""
        conn = self._conn
        if conn is not None:
            self._guard(conn, lambda: conn.heartbeat_tick(rate))

    # -- retrying -----------------------------------------------------------------------

    def ensure(
        self,
        obj: _ensure.Revivable,
        fun: Callable[..., R],
        errback: _ensure.Errback | None = None,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        on_revive: Callable[[Channel], Any] | None = None,
        retry_errors: tuple[type[BaseException], ...] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Callable[..., R]:
        """Wrap ``fun`` so recoverable errors are retried (see ``docs/failover.rst``).

        On a recoverable connection error the connection is torn down, the
        next alternate is connected, ``obj.revive(channel)`` and
        ``on_revive(channel)`` run, and ``fun`` is called again. On a
        recoverable channel error the channel is replaced after a backoff.
        Irrecoverable errors propagate at once. The budget is
        :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`; the loose keywords
        override what they give, or ``policy`` replaces it.
        """
        if policy is None:
            policy = RetryPolicy.from_intervals(
                max_retries, interval_start, interval_step, interval_max, timeout
            )
        if retry_errors:
            policy = policy.replace(on=policy.on + tuple(retry_errors))
        return _ensure.ensured(self, obj, fun, policy, errback=errback, on_revive=on_revive)

    def autoretry(
        self, fun: Callable[..., R], channel: Channel | None = None, **opts: Any
    ) -> Callable[..., tuple[R, Channel]]:
        """Wrap ``fun(*args, channel=..., **kw)``; the wrapper returns ``(retval, channel)``.

        ``opts`` are :meth:`ensure`'s keywords.
        """
        revivable, call = _ensure.autoretried(self, fun, channel)
        return self.ensure(revivable, call, **opts)

    # -- factories (kombu's names; each imports its layer when called) --------------------

    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        """A pool of connections like this one (see :class:`pools.ConnectionPool`)."""
        from pools import ConnectionPool

        return ConnectionPool(self, limit=limit, **kwargs)

    def ChannelPool(self, limit: int | None = None, **kwargs: Any) -> ChannelPool:
        """A pool of channels on this connection (see :class:`pools.ChannelPool`)."""
        from pools import ChannelPool

        return ChannelPool(self, limit=limit, **kwargs)

    def Producer(self, channel: Channel | None = None, **kwargs: Any) -> Producer:
        """A :class:`broker.Producer` on ``channel`` (or on this connection)."""
        from broker.messaging.producer import Producer

        return Producer(channel if channel is not None else self, **kwargs)

    def Consumer(
        self, queues: Any = None, channel: Channel | None = None, **kwargs: Any
    ) -> Consumer:
        """A :class:`broker.Consumer` on ``channel`` (or on this connection)."""
        from broker.messaging.consumer import Consumer

        return Consumer(channel if channel is not None else self, queues=queues, **kwargs)

    def SimpleQueue(
        self,
        name: Any,
        no_ack: bool | None = None,
        queue_opts: Mapping[str, Any] | None = None,
        queue_args: Mapping[str, Any] | None = None,
        exchange_opts: Mapping[str, Any] | None = None,
        channel: Channel | None = None,
        **kwargs: Any,
    ) -> SimpleQueue:
        """A :class:`broker.SimpleQueue` named ``name`` (or a Queue object); kombu's arguments.

        On ``channel`` if given (it stays open when the queue closes), else on
        a channel of its own, opened now and closed with the queue. The other
        keywords are the queue's (``serializer``, ``compression``, ``accept``).
        """
        from broker.messaging.simple import SimpleQueue

        return SimpleQueue(
            channel if channel is not None else self,
            name,
            no_ack,
            queue_opts,
            queue_args,
            exchange_opts,
            **kwargs,
        )

    def SimpleBuffer(
        self,
        name: Any,
        no_ack: bool | None = None,
        queue_opts: Mapping[str, Any] | None = None,
        queue_args: Mapping[str, Any] | None = None,
        exchange_opts: Mapping[str, Any] | None = None,
        channel: Channel | None = None,
        **kwargs: Any,
    ) -> SimpleBuffer:
        """A transient, auto-deleting :class:`broker.SimpleBuffer`; arguments as in SimpleQueue."""
        from broker.messaging.simple import SimpleBuffer

        return SimpleBuffer(
            channel if channel is not None else self,
            name,
            no_ack,
            queue_opts,
            queue_args,
            exchange_opts,
            **kwargs,
        )

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Close gracefully (bounded by a deadline). Safe to call twice.

        Threads still waiting on the connection raise a connection error.
        Afterwards :attr:`connection` is ``None`` until the next connect.
        """
        with self._link_lock:
            self._released = True
            conn, self._conn = self._conn, None
            self._heartbeats.stop()
            self._default_channel = None
            self._declared.clear()
            if conn is None:
                return
            self._closing = True
            try:
                conn.close(timeout=CLOSE_TIMEOUT)
            finally:
                self._closing = False
                logger.info("closed connection to %s", self.as_uri())
                self._callbacks.closed(self, None)

    release = close

    def collect(self) -> None:
        """Drop the connection at once without any handshake (for broken links)."""
        self._drop(None)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the constructor arguments: the copy is equivalent and unconnected.

        The lifecycle hooks travel with it, those appended after construction
        included, as long as they pickle themselves (module-level functions
        do; lambdas and closures do not). A hook that does not pickle is left
        out rather than making the whole connection unpicklable: kombu's
        connections, which have no hooks, always pickle.
        """
        hooks = {name: _picklable(functions) for name, functions in _hook_lists(self).items()}
        init_args = dict(self._init_args, **dict.fromkeys(hooks))
        return (_unpickle, (type(self), init_args, hooks))

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _picklable(hooks: Sequence[Any]) -> list[Any]:
    """The hooks that pickle (see :meth:`Connection.__reduce__`)."""
    kept = []
    for hook in hooks:
        try:
            pickle.dumps(hook)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            logger.debug("a Connection is pickled without its hook %r: %s", hook, exc)
        else:
            kept.append(hook)
    return kept


def _unpickle(
    cls: type[Connection], init_args: dict[str, Any], hooks: Mapping[str, list[Any]]
) -> Connection:
    """Rebuild a pickled :class:`Connection`: its arguments, then its hooks."""
    conn = cls(**init_args)
    lists = _hook_lists(conn)
    for name, functions in hooks.items():
        lists[name].extend(functions)
    return conn


def _hook_lists(conn: Connection) -> dict[str, list[Any]]:
    """The connection's lifecycle hook lists, by constructor keyword."""
    return {
        "on_open": conn.on_open, "on_open_error": conn.on_open_error,
        "on_close": conn.on_close, "on_connect": conn.on_connect,
        "on_blocked": conn.on_blocked, "on_unblocked": conn.on_unblocked,
    }  # fmt: skip
