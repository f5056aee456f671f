"""The :class:`Connection` façade.

It owns the list of alternate brokers and the current transport connection,
and delegates: URL work to :mod:`broker.url.parse` and :mod:`broker.url.targets`,
retrying to :mod:`broker.retry.ensure` and :mod:`broker.retry.policy`, host cycling to
:mod:`broker.connection.failover`, transport work to the :mod:`transports` registry,
pooling to :mod:`pools` and messaging to :mod:`broker.messaging.producer`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from broker.connection.factories import ConnectionFactories
from broker.connection.failover import resolve_strategy
from broker.connection.heartbeat import HeartbeatSender
from broker.connection.info import ConnectionInfo
from broker.connection.lifecycle import ConnectionLifecycle
from broker.errors import ConfigurationError
from broker.retry import ensure as _ensure
from broker.retry.policy import Linear, RetryPolicy
from broker.url.targets import Target, build_targets, unknown_keywords_message
from transports.base import Channel, Transport, TransportConnection

if TYPE_CHECKING:
    from broker.connection.recovery import Topology

__all__ = ["Connection"]

logger = logging.getLogger("broker.connection")

R = TypeVar("R")
ConnectionHook = Callable[["Connection"], Any]

#: How long ``close()`` waits for the broker's close-ok before tearing down.
CLOSE_TIMEOUT = 2.0
#: Longest single wait inside ``drain_events``, so that callbacks queued with
#: ``add_callback_threadsafe`` and the blocked-connection deadline are served.
_DRAIN_SLICE = 0.25


def _as_list(value: ConnectionHook | Iterable[ConnectionHook] | None) -> list[ConnectionHook]:
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)


class Connection(ConnectionInfo, ConnectionLifecycle, ConnectionFactories):
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

    Constructing a Connection performs no I/O: it connects on first use.
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
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ConfigurationError(unknown_keywords_message(kwargs))
        if transport_options is not None and not isinstance(transport_options, Mapping):
            raise ConfigurationError(
                f"transport_options must be a mapping, got {transport_options!r}"
            )
        if blocked_connection_timeout is not None and (
            isinstance(blocked_connection_timeout, bool)
            or not isinstance(blocked_connection_timeout, int | float)
            or blocked_connection_timeout <= 0
        ):
            raise ConfigurationError(
                "blocked_connection_timeout must be a number > 0 or None, "
                f"got {blocked_connection_timeout!r}"
            )
        self._init_args: dict[str, Any] = {
            "hostname": hostname, "userid": userid, "password": password,
            "virtual_host": virtual_host, "port": port, "ssl": ssl, "transport": transport,
            "connect_timeout": connect_timeout, "transport_options": transport_options,
            "login_method": login_method, "heartbeat": heartbeat,
            "failover_strategy": failover_strategy, "alternates": alternates,
            "on_open": on_open, "on_open_error": on_open_error, "on_close": on_close,
            "on_connect": on_connect, "on_blocked": on_blocked, "on_unblocked": on_unblocked,
            "blocked_connection_timeout": blocked_connection_timeout,
            "connection_name": connection_name, "client_properties": client_properties,
            "heartbeat_thread": heartbeat_thread,
        }  # fmt: skip
        self._transport_options: Mapping[str, Any] = MappingProxyType(dict(transport_options or {}))
        self._strategy = resolve_strategy(failover_strategy)
        self._set_targets()
        self._transports: dict[type[Transport], Transport] = {}
        self._conn: TransportConnection | None = None
        self._default_channel: Channel | None = None
        self._heartbeat: HeartbeatSender | None = None
        self._heartbeat_thread = heartbeat_thread
        self._closing = False
        self._connect_count = 0
        self._owner: int | None = None
        self._pending: collections.deque[Callable[[], Any]] = collections.deque()
        self._blocked_since: float | None = None
        self._blocked_timeout = blocked_connection_timeout
        self._topology: Topology | None = None
        self.on_open = _as_list(on_open)
        self.on_open_error = [on_open_error] if on_open_error else []
        self.on_close = [on_close] if on_close else []
        self.on_connect = _as_list(on_connect)
        self.on_blocked = [on_blocked] if on_blocked else []
        self.on_unblocked = [on_unblocked] if on_unblocked else []
        #: Keys of entities declared on the current connection (cleared on reconnect).
        self.declared_entities: set[Any] = set()

    # -- alternates ------------------------------------------------------------

    def _set_targets(self) -> None:
        args = self._init_args
        self._targets: tuple[Target, ...] = build_targets(
            args["hostname"],
            alternates=args["alternates"],
            transport_options=self._transport_options,
            **{k: args[k] for k in _TARGET_KEYWORDS},
        )
        self._by_uri = {t.url.as_uri(include_password=True): t for t in self._targets}
        self._cycle = iter(self._strategy(list(self._by_uri)))
        self._current = self._next_target()

    def _next_target(self) -> Target:
        uri = next(self._cycle)
        target = self._by_uri.get(uri) if isinstance(uri, str) else None
        if target is None:
            raise ConfigurationError(
                f"failover_strategy yielded {uri!r}, which is not one of this connection's URLs"
            )
        return target

    def maybe_switch_next(self) -> None:
        """Move to the next alternate (per the failover strategy), if there is one."""
        if len(self._targets) > 1:
            self._current = self._next_target()

    def switch(self, url: str) -> None:
        """Close the current connection and use ``url`` (and only it) from now on."""
        self.close()
        self._init_args = dict(self._init_args, hostname=url, alternates=None)
        self._set_targets()

    # -- connecting ------------------------------------------------------------

    def verify(self) -> bool:
        """Non-blocking liveness check: False when closed or known broken."""
        conn = self._conn
        return conn is not None and conn.verify()

    def _implicit_policy(self) -> RetryPolicy:
        # Implicit connects (channel(), default_channel, drain_events, publish)
        # make three passes over the alternates, pausing 1 s then 2 s between
        # passes; every attempt is bounded by connect_timeout.
        return RetryPolicy(
            max_retries=3 * len(self._targets) - 1, backoff=Linear(1.0, 1.0, 2.0), timeout=None
        )

    def connect(self) -> Connection:
        """Connect now (bounded by the implicit-connect policy) and return self."""
        return self.ensure_connection(policy=self._implicit_policy())

    def ensure_connection(
        self,
        errback: _ensure.Errback | None = None,
        max_retries: int | None = None,
        interval_start: float = 2,
        interval_step: float = 2,
        interval_max: float = 30,
        callback: Callable[[], None] | None = None,
        timeout: float | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> Connection:
        """Connect, retrying and failing over until it works or the budget is spent.

        ``max_retries=N`` means N + 1 attempts. With neither ``max_retries``
        nor ``timeout`` the default budget applies (see :mod:`broker.retry.policy`).
        ``errback(exc, interval)`` runs before each retry; ``callback()`` about
        once a second while waiting.

        Raises:
            OperationalError: the budget ran out (the last error is ``__cause__``).
            AuthenticationError, TLSVerificationError: at once, never retried.
        """
        if self.connected:
            return self
        if policy is None:
            policy = RetryPolicy.from_intervals(
                max_retries, interval_start, interval_step, interval_max, timeout
            )
        try:
            _ensure.connect_with_retry(self, policy.begin(), errback=errback, callback=callback)
        except BaseException as exc:
            for hook in self.on_open_error:
                hook(self, exc)
            raise
        return self

    def _transport_for(self, target: Target) -> Transport:
        transport = self._transports.get(target.transport_cls)
        if transport is None:
            transport = self._transports[target.transport_cls] = target.transport_cls()
        return transport

    def _open_current(self, remaining: float | None) -> None:
        """One connect attempt to the current alternate (used by the retry loop)."""
        target = self._current
        params = target.params
        if remaining is not None and (
            params.connect_timeout is None or params.connect_timeout > remaining
        ):
            params = replace(params, connect_timeout=max(remaining, 0.01))
        conn = self._transport_for(target).connect(
            params, on_blocked=self._handle_blocked, on_unblocked=self._handle_unblocked
        )
        self._conn, self._owner, self._closing = conn, threading.get_ident(), False
        reconnect = self._connect_count > 0
        self._connect_count += 1
        if conn.heartbeat and self._heartbeat_thread:
            self._heartbeat = HeartbeatSender(conn, conn.heartbeat, target.host)
            self._heartbeat.start()
        logger.info("connected to %s", target.as_uri())
        try:
            for hook in self.on_open:
                hook(self)
            if reconnect and self._topology is not None:
                self._topology.replay(self)
            for hook in self.on_connect:
                hook(self)
        except BaseException as exc:
            # A half-recovered connection is no connection: drop it so the
            # retry loop (or the caller) starts from a clean state; the loop
            # itself decides whether to move on to the next alternate.
            self._connection_lost(exc, fail_over=False)
            raise

    def _connection(self) -> TransportConnection:
        """The live transport connection, connecting implicitly (bounded) if needed."""
        conn = self._conn
        if conn is None or not conn.is_open:
            if conn is not None:
                self._connection_lost(None)
            self.connect()
            conn = self._conn
            assert conn is not None
        return conn

    def _connection_lost(self, exc: BaseException | None, *, fail_over: bool = True) -> None:
        """Drop a broken connection at once (no handshake), notify, and fail over.

        With an error, the next connect starts at the next alternate.
        """
        conn, self._conn = self._conn, None
        self._stop_heartbeat()
        self._default_channel = None
        self._blocked_since = None
        self.declared_entities.clear()
        if conn is not None:
            conn.teardown()
            if exc is not None:
                logger.warning("connection to %s lost: %s", self._current.as_uri(), exc)
            for hook in self.on_close:
                hook(self, exc)
        if exc is not None and fail_over:
            # The host that just failed goes to the back of the line: the next
            # connect (implicit or explicit) starts with the next alternate.
            self.maybe_switch_next()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    # -- channels and events ---------------------------------------------------

    def channel(self) -> Channel:
        """Open a new channel (connecting first if needed). Use it as a context manager."""
        self._run_pending_callbacks()
        return self._guard(lambda: self._connection().channel(owner=self))

    @property
    def default_channel(self) -> Channel:
        """A channel shared by simple uses of this connection, reopened when closed."""
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

        Raises:
            TimeoutError: (``socket.timeout``) nothing arrived within ``timeout``.
            ConnectionBlockedTimeout: blocked longer than ``blocked_connection_timeout``.
            RecoverableConnectionError: the link broke (the connection is dropped).
        """
        conn = self._conn
        if conn is None or not conn.is_open:
            conn = self._connection()
        # Waits are sliced so callbacks queued from other threads run and a
        # blocked connection is noticed; the first slice needs no clock read.
        wait = _DRAIN_SLICE
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + timeout
            if timeout < wait:
                wait = timeout
        while True:
            if self._pending:
                self._run_pending_callbacks()
                if deadline is not None:  # the time they took counts
                    wait = min(_DRAIN_SLICE, deadline - time.monotonic())
            if self._blocked_since is not None:
                self._check_blocked()
            if wait <= 0:
                raise TimeoutError("timed out")
            try:
                conn.drain_events(wait)
                return
            except TimeoutError:
                if deadline is not None:
                    wait = min(_DRAIN_SLICE, deadline - time.monotonic())
            except self.recoverable_connection_errors as exc:
                self._connection_lost(exc)
                raise

    def _guard(self, call: Callable[[], R]) -> R:
        """Run a transport call; a recoverable connection error drops the connection."""
        try:
            return call()
        except self.recoverable_connection_errors as exc:
            self._connection_lost(exc)
            raise

    def heartbeat_check(self, rate: int = 2) -> None:
        """kombu compatibility: send a heartbeat if due, raise if the peer went silent."""
        if self._conn is not None:
            conn = self._conn
            self._guard(lambda: conn.heartbeat_tick(rate))

    # -- retrying ----------------------------------------------------------------

    def ensure(
        self,
        obj: _ensure.Revivable,
        fun: Callable[..., R],
        errback: _ensure.Errback | None = None,
        max_retries: int | None = None,
        interval_start: float = 1,
        interval_step: float = 1,
        interval_max: float = 1,
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
        Irrecoverable errors propagate at once. ``policy`` may replace the
        loose keywords.
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
        """Wrap ``fun(*args, channel=..., **kw)``; the wrapper returns ``(retval, channel)``."""
        return _ensure.autoretried(self, fun, channel, opts)

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Close gracefully (bounded by a deadline). Safe to call twice."""
        conn, self._conn = self._conn, None
        self._stop_heartbeat()
        self._default_channel = None
        self.declared_entities.clear()
        if conn is None:
            return
        self._closing = True
        try:
            conn.close(timeout=CLOSE_TIMEOUT)
        finally:
            self._closing = False
            logger.info("closed connection to %s", self._current.as_uri())
            for hook in self.on_close:
                hook(self, None)

    release = close

    def collect(self) -> None:
        """Drop the connection at once without any handshake (for broken links)."""
        self._connection_lost(None)

    def clone(self, **kwargs: Any) -> Connection:
        """A new, unconnected Connection with the same arguments, some overridden."""
        return type(self)(**{**self._init_args, **kwargs})

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


_TARGET_KEYWORDS = (
    "transport",
    "userid",
    "password",
    "virtual_host",
    "port",
    "ssl",
    "connect_timeout",
    "heartbeat",
    "login_method",
    "connection_name",
    "client_properties",
)
