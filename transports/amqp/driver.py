"""Small, targeted subclasses of py-amqp's classes used by the AMQP transport.

Each override fixes one behaviour brokerpool needs and py-amqp 5.4 lacks. Where
that means a private py-amqp hook, the override goes through the adapters of
:mod:`transports.amqp.pyamqp_internals`, which is the only module touching them:

* :class:`TLSSocketTransport` wraps the socket with a caller-supplied
  :class:`ssl.SSLContext` (py-amqp only builds its own), bounds the TLS
  handshake by the connect deadline, resets the socket to blocking afterwards
  (py-amqp leaves ``connect_timeout`` on it, so reads time out later), never
  does a TLS shutdown handshake on close (it can block on a dead peer), and
  serialises reads with writes: an OpenSSL connection must not be read by the
  owner thread while the heartbeat thread writes to it.
* :class:`DriverChannel` is *closed* after the broker closes it with an error
  (py-amqp silently re-opens it) and delivers bodies as ``bytes``, the empty
  one included (py-amqp leaves ``''``, a str, when no body frame came).
* :class:`Driver` never reconnects behind our back when its transport is gone,
  negotiates ``channel_max``/``frame_max`` as the minimum of both peers'
  values, bounds whole operations by :attr:`Driver.deadline` (connect, close),
  and keeps ticking heartbeats while it waits for a reply without a timeout,
  so a silent peer is found even in the middle of ``queue_declare``. While a
  :class:`~transports.amqp.writes.WriteBuffer` holds outgoing frames
  (:attr:`Driver.write_buffer`), every read sends them first, and the
  connection's :class:`~transports.amqp.writes.IdleFlusher` thread sends them
  when nobody writes or reads for ``max_delay``.
  :meth:`Driver.poll_events` is py-amqp's check for incoming frames before a
  publish, with one ``poll`` system call instead of three calls and an
  exception.

Only the AMQP transport modules import this; nothing here translates errors.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import threading
import weakref
from time import monotonic
from typing import Any

import amqp
from amqp import spec

from transports.amqp.pyamqp_internals import (
    ChannelAdapter,
    ConnectionAdapter,
    SSLTransportAdapter,
    has_unread_input,
)
from transports.amqp.writes import IdleFlusher, WriteBuffer

__all__ = ["Driver", "DriverChannel", "TLSSocketTransport"]

#: Protocol extensions announced to the broker (enabled when it supports them).
NEGOTIATE_CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "publisher_confirms": True,
}


class TLSSocketTransport(SSLTransportAdapter):
    """py-amqp's TLS transport, wrapping with a given context and bounded handshake."""

    sock: Any

    def __init__(
        self,
        host: str,
        connect_timeout: float | None,
        *,
        context: ssl.SSLContext,
        server_hostname: str,
        deadline: float | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, connect_timeout=connect_timeout, ssl=True, **kwargs)
        self.tls_context = context
        self.server_hostname = server_hostname
        self.deadline = deadline
        # Plain sockets allow one reader and one writer at once; an SSL object
        # does not. Reads are bounded (the transport slices its waits), so a
        # heartbeat write waits at most one slice.
        self._io_lock = threading.RLock()

    @property
    def io_lock(self) -> threading.RLock:
        """Held by every read and write of the TLS connection (a send from another thread too)."""
        return self._io_lock

    def read_frame(self, *args: Any, **kwargs: Any) -> Any:
        with self._io_lock:
            return super().read_frame(*args, **kwargs)

    def write(self, s: Any) -> None:
        with self._io_lock:
            super().write(s)

    def pending(self) -> int:
        """Bytes TLS decrypted that nobody has read yet (invisible to ``poll``)."""
        with self._io_lock:
            return int(self.sock.pending())

    def setup_tls(self) -> None:
        """Wrap with our context; the handshake ends by the connect deadline."""
        self.sock = self.tls_context.wrap_socket(
            self.sock, server_hostname=self.server_hostname, do_handshake_on_connect=False
        )
        budget = self.connect_timeout
        if self.deadline is not None:
            budget = max(self.deadline - monotonic(), 0.001)
        self.sock.settimeout(budget)
        self.sock.do_handshake()
        # Back to blocking: reads set their own timeouts (having_timeout).
        self.sock.settimeout(None)

    def before_close(self) -> None:
        """No TLS close_notify exchange.

        The AMQP close handshake already ended the session, and ``unwrap()``
        can block forever on a silent peer.
        """


class DriverChannel(ChannelAdapter):
    """A py-amqp channel that stays closed after a broker-side channel error."""

    def __init__(self, connection: Driver, channel_id: int | None = None, **kwargs: Any) -> None:
        # Bodies stay bytes: decoding belongs to the serialization layer.
        kwargs["auto_decode"] = False
        super().__init__(connection, channel_id, **kwargs)

    def dispatch_method(self, method_sig: Any, payload: Any, content: Any) -> Any:
        """Dispatch one incoming method; an empty message body is ``b''``, never ``''``."""
        if content is not None and not content.body_size:
            content.body = b""
        return super().dispatch_method(method_sig, payload, content)

    def after_broker_close(self) -> None:
        """Release the channel instead of opening it again.

        py-amqp re-opens a channel the broker closed (a hidden round trip and
        a channel that silently lost its consumers). The broker already got
        close-ok; the error is raised to the caller.
        """
        self.collect()

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Reject deliveries (RabbitMQ extension; py-amqp 5.4 has no sender for it)."""
        self.send_method(spec.Basic.Nack, "Lbb", (delivery_tag, multiple, requeue))


class Driver(ConnectionAdapter):
    """A py-amqp connection with bounded waits; see the module docstring."""

    Channel = DriverChannel
    negotiate_capabilities = NEGOTIATE_CAPABILITIES

    #: Monotonic time by which the current operation (connect, close) must end.
    deadline: float | None = None
    #: Outgoing frames held back for pipelined publishing, if any (see transports.amqp.writes).
    write_buffer: WriteBuffer | None = None
    #: How many holders share :attr:`write_buffer`.
    write_buffer_users = 0
    #: The thread sending held frames nobody else sends in time (made with the first hold).
    idle_flusher: IdleFlusher | None = None
    #: ``(socket, poller, is_tls)`` for :meth:`poll_events`, made on first use.
    _poll: tuple[Any, select.poll, bool] | None = None

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        wanted_channel_max: int | None = None,
        wanted_frame_max: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tls_context = tls_context
        self.server_hostname = server_hostname
        self.wanted_channel_max = wanted_channel_max
        self.wanted_frame_max = wanted_frame_max

    # -- transport ------------------------------------------------------------

    def Transport(  # py-amqp's factory method name
        self,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> Any:
        if self.tls_context is None:
            return super().Transport(
                host,
                connect_timeout,
                False,
                read_timeout,
                write_timeout,
                socket_settings=socket_settings,
                **kwargs,
            )
        return TLSSocketTransport(
            host,
            connect_timeout,
            context=self.tls_context,
            server_hostname=self.server_hostname or host,
            deadline=self.deadline,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            socket_settings=socket_settings,
            **kwargs,
        )

    # -- negotiation ----------------------------------------------------------

    def tune_limits(self, channel_max: int, frame_max: int) -> tuple[int, int]:
        """The smaller of the broker's limits and ours (py-amqp takes the broker's)."""
        return (
            _smaller(channel_max, self.wanted_channel_max),
            _smaller(frame_max, self.wanted_frame_max),
        )

    # -- writing ---------------------------------------------------------------

    def hold_writes(self, limit: int) -> WriteBuffer:
        """Start (or join) coalescing outgoing frames; pair with :meth:`release_writes`."""
        buffer = self.write_buffer
        if buffer is None:
            transport = self.transport
            guard = transport.io_lock if isinstance(transport, TLSSocketTransport) else None
            buffer = self.write_buffer = WriteBuffer(transport, limit, guard=guard)
            flusher = self.idle_flusher
            if flusher is None:
                flusher = self.idle_flusher = IdleFlusher(str(self.host))
                # The thread holds no reference to us: it ends when we are collected.
                weakref.finalize(self, flusher.stop)
            flusher.watch(buffer)
        self.write_buffer_users += 1
        return buffer

    def release_writes(self) -> None:
        """Send everything held; the last holder removes the buffer.

        Raises:
            OSError: the send failed (the transport is marked disconnected).
        """
        buffer = self.write_buffer
        if buffer is None:
            return  # torn down meanwhile
        self.write_buffer_users -= 1
        if self.write_buffer_users > 0:
            buffer.flush()
            return
        self.write_buffer, self.write_buffer_users = None, 0
        if self.idle_flusher is not None:
            self.idle_flusher.watch(None)
        buffer.close()

    def drop_writes(self) -> None:
        """Forget held frames without sending them, and end the idle flusher (teardown)."""
        self.write_buffer, self.write_buffer_users = None, 0
        flusher, self.idle_flusher = self.idle_flusher, None
        if flusher is not None:
            flusher.stop()

    # -- reading ---------------------------------------------------------------

    def blocking_read(self, timeout: float | None = None) -> Any:
        """Read and dispatch one frame; buffered frames are sent first.

        Every read of py-amqp and of ours comes here: nothing ever waits for
        the answer to a frame that has not left.
        """
        buffer = self.write_buffer
        if buffer is not None:
            buffer.flush()
        return _blocking_read(self, timeout)

    def poll_events(self) -> None:
        """Dispatch an event if a frame has arrived; return at once if none has.

        py-amqp does ``drain_events(timeout=0)`` before every publish, so that
        ``connection.blocked``, returns and errors are seen early; that costs
        three system calls and an exception when nothing has arrived, which is
        nearly always. A zero-timeout ``poll`` finds that out in one.
        """
        transport = self.transport
        sock = transport.sock
        poll = self._poll
        if poll is None or poll[0] is not sock:
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            poll = self._poll = (sock, poller, isinstance(transport, TLSSocketTransport))
        # A partial frame read earlier, or bytes TLS already decrypted, are
        # invisible to poll: then read the usual way.
        quiet = not has_unread_input(transport) and not (poll[2] and transport.pending())
        if quiet and not poll[1].poll(0):
            return
        with contextlib.suppress(TimeoutError):
            self.drain_events(timeout=0)

    def drain_events(self, timeout: float | None = None) -> None:
        """Read until one method or message has been dispatched.

        Called by py-amqp itself (``timeout=0`` before each publish, ``None``
        while a channel waits for a reply). Unbounded waits become bounded by
        :attr:`deadline`, and heartbeat-aware when heartbeats are on.
        """
        deadline = self.deadline
        if deadline is not None:
            if timeout is not None:
                deadline = min(deadline, monotonic() + timeout)
            self.drain_until(deadline)
            return
        if timeout is None and self.heartbeat:
            self.drain_until(None)
            return
        while not self.blocking_read(timeout):
            pass

    def drain_until(self, deadline: float | None) -> None:
        """Dispatch at least one real event, or raise ``socket.timeout`` at ``deadline``.

        Heartbeat frames do not count as events and do not extend the wait.
        With heartbeats on, the wait is cut in slices of a quarter interval and
        :meth:`heartbeat_tick` runs between them: it sends our heartbeats and
        raises ``ConnectionForced('Too many heartbeats missed')`` for a silent
        peer, even when ``deadline`` is ``None``.
        """
        interval = self.heartbeat or 0
        piece = interval / 4 if interval else None
        while True:
            if deadline is None:
                wait = piece
            else:
                # A deadline already passed still gets one non-blocking read.
                wait = max(deadline - monotonic(), 0.0)
                if piece is not None and piece < wait:
                    wait = piece
            try:
                if self.blocking_read(wait):
                    return
            except TimeoutError:
                if deadline is not None and monotonic() >= deadline:
                    if interval:
                        # Callers that wait in short slices (Connection.drain_events)
                        # end every slice here: a read that timed out proves the
                        # socket was silent, so check for a dead peer first.
                        self.heartbeat_tick()
                    raise
            if interval:
                # Tick after reading, never before: frames that queued up while
                # the owner was busy elsewhere must count as signs of life.
                self.heartbeat_tick()


_blocking_read = amqp.Connection.blocking_read


def _smaller(server: int, wanted: int | None) -> int:
    """The smaller non-zero limit (0 means 'no limit' in AMQP tuning)."""
    if not wanted:
        return server
    if not server:
        return wanted
    return min(server, wanted)
