"""The Redis link of one connection: redis-py clients, the broker script, error translation.

A :class:`Link` holds three Redis connections to one server, all from one
redis-py pool with redis-py's own retries turned off (retrying, and moving
to another server, is brokerpool's job):

* the owner's, for every command of the threads using the connection
  (redis-py serialises them);
* the keeper's, opened on first use by :meth:`Link.keeper_call` (the
  heartbeat thread renews the lease through it);
* a pub/sub connection, opened on the first subscription, on which the owner
  waits for "queue has messages" notifications.

Every broker operation is one call of the Lua script
``broker.lua`` (loaded once per server, called by SHA). The private redis-py
members this needs are used in :mod:`transports.redis.redispy_internals` only.

Connecting is bounded as a whole by ``connect_timeout``: the TCP connect, the
TLS handshake, the login (AUTH, CLIENT SETNAME, SELECT), loading the script
and registering the connection's lease. redis-py bounds the TCP connect by
``socket_connect_timeout`` but each reply after it by ``socket_timeout``
(10 s), so while a :class:`Link` connects, its redis-py connections
(:class:`BoundedConnection`, :class:`BoundedTLSConnection`) give the TLS
handshake and each reply only what is left of a shared
:class:`ConnectDeadline`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any, Protocol

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.client import PubSub
    from redis.connection import AbstractConnection
    from redis.exceptions import MasterDownError, NoPermissionError, OutOfMemoryError, ReadOnlyError
    from redis.retry import Retry
except ImportError as missing:  # the registry reports this when resolving 'redis'
    raise ImportError(
        f"the redis transport needs redis-py: pip install 'brokerpool[redis]' ({missing})"
    ) from missing

from broker.errors import (
    AuthenticationError,
    BrokerError,
    HeartbeatTimeout,
    IrrecoverableConnectionError,
    RecoverableConnectionError,
    TLSVerificationError,
)
from transports._shared.replies import from_reply_text
from transports._shared.tls import TLSSettings, hopeless_handshake
from transports.base import ConnectionParams
from transports.redis.options import RedisSettings, client_kwargs
from transports.redis.redispy_internals import (
    WrappingSSLConnection,
    cut_socket_timeout,
    set_socket_timeout,
)

__all__ = [
    "SCRIPT",
    "BoundedConnection",
    "BoundedTLSConnection",
    "ConnectDeadline",
    "Link",
    "Subscriber",
    "tls_wrap",
    "translate",
]

SCRIPT = resources.files("transports.redis").joinpath("broker.lua").read_text()

#: Server replies after which another server (or a later attempt) may succeed.
_RECOVERABLE_REPLIES = ("READONLY", "LOADING", "OOM", "BUSY", "MASTERDOWN", "LEASE_EXPIRED")
_AUTH_REPLIES = ("WRONGPASS", "NOAUTH")


def translate(exc: redis.RedisError, where: str, heartbeat: float = 0.0) -> BrokerError:
    """The brokerpool error for a redis-py exception (raise it ``from exc``).

    With heartbeats on, a command that timed out (after two heartbeats) is a
    :class:`~broker.errors.HeartbeatTimeout`.
    """
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(_AUTH_REPLIES):
        return AuthenticationError(f"{where}: Redis refused the login: {text}")
    if isinstance(exc, NoPermissionError):
        return IrrecoverableConnectionError(f"{where}: Redis refused a command: {text}")
    if isinstance(exc, redis.TimeoutError) and heartbeat:
        return HeartbeatTimeout(f"{where}: no answer within two heartbeats ({2 * heartbeat:g}s)")
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in text:
            return TLSVerificationError(f"{where}: TLS verification failed: {text}")
        hopeless = hopeless_handshake(cause, where) if cause is not None else None
        if hopeless is not None:  # e.g. rediss:// to a port that answers in plain text
            return hopeless
        return RecoverableConnectionError(f"{where}: {text or type(exc).__name__}")
    # redis-py strips the reply name off these, so they are told apart by class.
    if isinstance(exc, ReadOnlyError | OutOfMemoryError | MasterDownError):
        return RecoverableConnectionError(f"{where}: {type(exc).__name__}: {text}")
    if isinstance(exc, redis.ResponseError):
        channel_error = from_reply_text(text)
        if channel_error is not None:
            return channel_error
        if text.startswith(_RECOVERABLE_REPLIES):
            return RecoverableConnectionError(f"{where}: {text}")
    return IrrecoverableConnectionError(f"{where}: {type(exc).__name__}: {text}")


#: The least a reply may wait once the connect deadline has passed: what has
#: already arrived is still read (0 would make the socket non-blocking).
_LAST_CHANCE = 0.001


class ConnectDeadline:
    """When the connect under way must be done, shared by a :class:`Link` and its connections.

    ``at`` is a :func:`time.monotonic` time while the link connects with a
    ``connect_timeout``, and ``None`` otherwise (then nothing is cut).
    """

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def left(self) -> float | None:
        """Seconds left to connect (at least a millisecond), or ``None`` when not bounded now."""
        at = self.at
        if at is None:
            return None
        return max(at - time.monotonic(), _LAST_CHANCE)

    def __repr__(self) -> str:
        left = self.left()
        return "<ConnectDeadline idle>" if left is None else f"<ConnectDeadline {left:.3f}s left>"


def _read_within(
    connection: AbstractConnection,
    deadline: ConnectDeadline,
    read: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``read(*args, **kwargs)``, waiting only for what is left of ``deadline`` when it runs."""
    left = deadline.left()
    if left is None:
        return read(*args, **kwargs)
    set_socket_timeout(connection, left)
    try:
        return read(*args, **kwargs)
    finally:
        set_socket_timeout(connection, connection.socket_timeout)


class BoundedConnection(redis.Connection):
    """redis-py's TCP connection; while its link connects, each reply waits only for the time left.

    ``connect_deadline`` is a keyword argument beside redis-py's own.
    """

    def __init__(self, *, connect_deadline: ConnectDeadline, **kwargs: Any) -> None:
        # redis-py does not annotate Connection.__init__; its keywords are redis-py's to check.
        init: Callable[..., None] = super().__init__
        init(**kwargs)
        self.connect_deadline = connect_deadline

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return _read_within(self, self.connect_deadline, super().read_response, *args, **kwargs)


class BoundedTLSConnection(WrappingSSLConnection):
    """:class:`BoundedConnection` over TLS, wrapping its socket with ``wrap`` (:func:`tls_wrap`).

    ``wrap`` and ``connect_deadline`` are keyword arguments beside redis-py's own.
    """

    def __init__(self, *, connect_deadline: ConnectDeadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connect_deadline = connect_deadline

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return _read_within(self, self.connect_deadline, super().read_response, *args, **kwargs)


def tls_wrap(
    tls: TLSSettings, deadline: ConnectDeadline
) -> Callable[[socket.socket], ssl.SSLSocket]:
    """Wrap a connected socket with our TLS context; while connecting, within the time left."""

    def wrap(sock: socket.socket) -> ssl.SSLSocket:
        left = deadline.left()
        if left is None:
            return tls.context.wrap_socket(sock, server_hostname=tls.server_hostname)
        timeout = sock.gettimeout()
        sock.settimeout(left)
        wrapped = tls.context.wrap_socket(sock, server_hostname=tls.server_hostname)
        wrapped.settimeout(timeout)  # replies set their own (BoundedTLSConnection)
        return wrapped

    return wrap


class Subscriber(Protocol):
    """What a :class:`Link` uses of redis-py's :class:`~redis.client.PubSub`.

    Declared because some of those methods are not annotated in redis-py:
    assigning a ``PubSub`` to this type checks it against these signatures.
    """

    def subscribe(self, *channels: str) -> None: ...

    def unsubscribe(self, *channels: str) -> None: ...

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float = 0.0
    ) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class Link:
    """The redis-py side of one connection (see the module docstring).

    The constructor connects: the owner's Redis connection, the script, and
    the registration of this connection's lease (:attr:`uid`), all within
    ``params.connect_timeout``.

    Raises (from the constructor):
        broker.errors.AuthenticationError, RecoverableConnectionError,
        TLSVerificationError, TLSHandshakeError: as :func:`translate` decides;
        a connect that outlasted ``connect_timeout`` is recoverable.
    """

    def __init__(self, params: ConnectionParams, found: RedisSettings, where: str) -> None:
        self.where = where
        self.settings = found
        #: This connection's name in Redis: its lease, its channels' and consumers' owner.
        self.uid = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._heartbeat = params.heartbeat
        self._deadline = ConnectDeadline()
        kwargs = client_kwargs(params, found)
        kwargs["retry"] = Retry(NoBackoff(), 0)
        # No CLIENT SETINFO: two round trips (and a package metadata lookup) per
        # connect; CLIENT SETNAME already says who we are.
        kwargs["driver_info"] = None
        kwargs["connect_deadline"] = self._deadline
        if found.tls is None:
            kwargs["connection_class"] = BoundedConnection
        else:
            kwargs["connection_class"] = BoundedTLSConnection
            kwargs["wrap"] = tls_wrap(found.tls, self._deadline)
        self._pool = redis.ConnectionPool(**kwargs)
        self._keeper: redis.Redis | None = None
        self._keeper_lock = threading.Lock()
        self._pubsub: Subscriber | None = None
        # redis-py's PubSub is one thread's at a time: subscribing, unsubscribing and waiting.
        self._pubsub_lock = threading.RLock()
        self._vhost = str(found.db)
        #: Called when the owner's link is found broken (the connection tears down).
        self.on_broken: Callable[[RecoverableConnectionError], None] | None = None
        timeout = params.connect_timeout
        self._deadline.at = None if timeout is None else time.monotonic() + timeout
        try:
            # A single-connection client connects (and logs in) when made.
            self.client = redis.Redis(
                connection_pool=self._pool, single_connection_client=True, retry=kwargs["retry"]
            )
            self._script = self.client.register_script(SCRIPT)
            self._script(args=(found.keyspace, "connect", self._vhost, self.uid, found.lease_ms))
        except BaseException as exc:
            self._pool.disconnect()  # never leave a half-open socket behind
            if not isinstance(exc, redis.RedisError):
                raise
            if isinstance(exc, redis.TimeoutError) and timeout is not None:
                raise RecoverableConnectionError(
                    f"could not connect to {where} within connect_timeout={timeout:g} s "
                    f"(TCP connect, TLS, login and setup together): {exc}"
                ) from exc
            raise translate(exc, where) from exc
        finally:
            self._deadline.at = None

    def call(self, op: str, *args: Any) -> Any:
        """Run one broker operation on the owner's connection."""
        try:
            return self._script(args=(self.settings.keyspace, op, self._vhost, *args))
        except redis.RedisError as exc:
            raise self._failed(exc) from exc

    def server_info(self) -> dict[str, Any]:
        """``INFO server`` (version, OS, mode)."""
        try:
            info: dict[str, Any] = self.client.info("server")
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        return info

    def call_within(self, seconds: float, op: str, *args: Any) -> Any:
        """:meth:`call`, with the owner's socket timeout cut to ``seconds`` (before closing)."""
        cut_socket_timeout(self.client, max(0.001, seconds))
        return self.call(op, *args)

    def keeper_call(self, op: str, *args: Any) -> Any:
        """Run one broker operation on the keeper's connection (for non-owner threads)."""
        try:
            with self._keeper_lock:
                if self._keeper is None:
                    self._keeper = redis.Redis(
                        connection_pool=self._pool, single_connection_client=True
                    )
                keeper = self._keeper
                return self._script(
                    args=(self.settings.keyspace, op, self._vhost, *args), client=keeper
                )
        except redis.RedisError as exc:
            raise translate(exc, self.where, self._heartbeat) from exc

    def hdel(self, key: str, *fields: int) -> int:
        """HDEL on the owner's connection (acks take this fast path)."""
        try:
            return int(self.client.hdel(self.settings.keyspace + key, *fields))
        except redis.RedisError as exc:
            raise self._failed(exc) from exc

    def replicas(self) -> int:
        """How many replicas are connected to this server now (``INFO replication``)."""
        try:
            info: dict[str, Any] = self.client.info("replication")
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        return int(info.get("connected_slaves", 0))

    def wait_for_replicas(self, count: int, timeout: float) -> int:
        """``WAIT``: until the owner's writes so far reached ``count`` replicas, at most
        ``timeout`` seconds; how many replicas acknowledged them."""
        try:
            return int(self.client.wait(count, max(1, round(timeout * 1000))))
        except redis.RedisError as exc:
            raise self._failed(exc) from exc

    def subscribe(self, channel: str) -> None:
        """Subscribe to a notification channel and wait until the server confirms it."""
        with self._pubsub_lock:
            self._subscribe(channel)

    def _subscribe(self, channel: str) -> None:
        try:
            pubsub = self._pubsub
            if pubsub is None:
                # What Redis.pubsub() returns; that method is not annotated in redis-py.
                pubsub = self._pubsub = PubSub(self._pool)
            pubsub.subscribe(channel)
            # Until the server confirms, a publish may not reach us: wait for it,
            # so that a message published after basic_consume returns always wakes us.
            deadline = time.monotonic() + self.settings.socket_timeout
            wanted = channel.encode()
            while (remaining := deadline - time.monotonic()) > 0:
                reply = pubsub.get_message(timeout=remaining)
                if reply and reply["type"] == "subscribe" and reply["channel"] == wanted:
                    return
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        raise RecoverableConnectionError(f"{self.where}: Redis did not confirm SUBSCRIBE")

    def unsubscribe(self, channel: str) -> None:
        """Stop notifications of one channel (not waited for)."""
        with self._pubsub_lock:
            if self._pubsub is None:
                return
            try:
                self._pubsub.unsubscribe(channel)
            except redis.RedisError as exc:
                raise self._failed(exc) from exc

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """The next pub/sub message (a notification or a confirmation), or ``None``.

        Raises:
            broker.errors.RecoverableConnectionError: the link is closed, or broke.
        """
        with self._pubsub_lock:
            if self._pubsub is None:
                raise RecoverableConnectionError(f"{self.where}: the redis connection is closed")
            try:
                message = self._pubsub.get_message(timeout=timeout)
            except redis.RedisError as exc:
                raise self._failed(exc) from exc
        return message

    def _failed(self, exc: redis.RedisError) -> BrokerError:
        """Translate a failure of the owner's connections; a broken link calls ``on_broken``."""
        error = translate(exc, self.where, self._heartbeat)
        if isinstance(error, RecoverableConnectionError) and self.on_broken is not None:
            self.on_broken(error)
        return error

    def close(self) -> None:
        """Close every socket at once (no QUIT, nothing waited for)."""
        closers: list[Callable[[], None]] = []
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            closers.append(pubsub.close)
        if self._keeper is not None:
            closers.append(self._keeper.close)
        closers += [self.client.close, self._pool.disconnect]
        for closer in closers:
            with contextlib.suppress(redis.RedisError, OSError):
                closer()
