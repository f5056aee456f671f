"""Small, targeted subclasses of py-amqp's classes used by the AMQP transport.

Each override fixes one behaviour brokerpool needs and py-amqp 5.4 lacks. Where
that means a private py-amqp hook, the override goes through the adapters of
:mod:`transports.amqp.pyamqp_internals`, which is the only module touching them:

* :class:`TLSSocketTransport` wraps the socket with a caller-supplied
  :class:`ssl.SSLContext` (py-amqp only builds its own), bounds the TLS
  handshake by the connect deadline, resets the socket to blocking afterwards
  (py-amqp leaves ``connect_timeout`` on it, so reads time out later), never
  does a TLS shutdown handshake on close (it can block on a dead peer), and
  serialises reads with writes through its I/O lock: an OpenSSL connection
  must not be read by one thread while another writes to it.
* :class:`DriverChannel` is *closed* after the broker closes it with an error
  (py-amqp silently re-opens it), delivers bodies as ``bytes``, the empty
  one included (py-amqp leaves ``''``, a str, when no body frame came), and
  waits for its replies on its own channel only (see below).
* :class:`Driver` never reconnects behind our back when its transport is gone,
  negotiates ``channel_max``/``frame_max`` as the minimum of both peers'
  values, bounds whole operations by :attr:`Driver.deadline` (connect, close),
  and keeps ticking heartbeats while it waits for a reply without a timeout,
  so a silent peer is found even in the middle of ``queue_declare``. While a
  :class:`~transports.amqp.writes.WriteBuffer` holds outgoing frames
  (:attr:`Driver.write_buffer`), every read sends them first, and the
  connection's :class:`~transports.amqp.writes.IdleFlusher` thread sends them
  when nobody writes or reads for ``max_delay``.

Threads. Once connected (:meth:`Driver.share`), a driver may be used by many
threads, one channel each. Writes need nothing more: py-amqp's frame writer
sends the frames of one method under one lock, and channel ids are handed
out under :attr:`Driver.channel_lock`. Reads go through a
:class:`~transports.amqp.demux.Demux` (one reader at a time; what it reads
goes to the thread entitled to it) and
:class:`~transports.amqp.reading.BufferedReads` (the socket keeps blocking
mode for writers; reads wait with ``poll`` until a deadline). A thread inside
py-amqp's ``Channel.wait`` (a synchronous method) takes only its channel's
events; :meth:`Driver.drain_until` takes the events of draining threads;
:meth:`Driver.poll_channel` is py-amqp's look for incoming frames before a
publish, for one channel, with one ``poll`` system call instead of three calls
and an exception.

Only the AMQP transport modules import this; nothing here translates errors.
"""

from __future__ import annotations

import errno
import ssl
import struct
import threading
import weakref
from time import monotonic
from typing import Any

import amqp
from amqp import spec

from transports.amqp.demux import CONNECTION, DRAIN, Demux, Item
from transports.amqp.framing import frame_writer
from transports.amqp.pyamqp_internals import (
    ChannelAdapter,
    ConnectionAdapter,
    SSLTransportAdapter,
)
from transports.amqp.reading import BufferedReads
from transports.amqp.writes import IdleFlusher, WriteBuffer

__all__ = ["Driver", "DriverChannel", "TLSSocketTransport"]

_BASIC_ACK = spec.Basic.Ack
#: Socket errors after which py-amqp's frame reader keeps the transport connected.
_TRANSIENT = frozenset({errno.EAGAIN, errno.EINTR, errno.ENOENT, errno.EWOULDBLOCK})
#: ``basic.ack``'s arguments after the class and method ids: delivery-tag, then the multiple bit.
_ACK_ARGUMENTS = struct.Struct(">QB")

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
        # does not. A read holds this lock only to receive bytes that have
        # arrived (see transports.amqp.reading), so a writer never waits long.
        self._io_lock = threading.RLock()

    @property
    def io_lock(self) -> threading.RLock:
        """Held by every receive and write of the TLS connection, from whichever thread."""
        return self._io_lock

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
    """A py-amqp channel that stays closed after a broker-side channel error.

    Its synchronous methods wait on this channel only: the replies (and
    whatever else arrives for the channel meanwhile) are dispatched on the
    waiting thread, while other threads' channels get theirs.
    """

    connection: Driver

    def __init__(self, connection: Driver, channel_id: int | None = None, **kwargs: Any) -> None:
        # Bodies stay bytes: decoding belongs to the serialization layer.
        kwargs["auto_decode"] = False
        super().__init__(connection, channel_id, **kwargs)
        demux = connection.demux
        if demux is not None:
            demux.open_slot(self.channel_id)

    def wait(
        self,
        method: Any,
        callback: Any = None,
        timeout: float | None = None,
        returns_tuple: bool = False,
    ) -> Any:
        """py-amqp's wait for a reply, reading only this channel's events (see the class)."""
        conn = self.connection
        demux = conn.demux if conn is not None else None
        if demux is None:
            return super().wait(method, callback, timeout, returns_tuple)
        channel_id = self.channel_id
        demux.claim(channel_id)
        scopes = conn.scopes
        outer = getattr(scopes, "current", CONNECTION)
        scopes.current = channel_id
        try:
            return super().wait(method, callback, timeout, returns_tuple)
        finally:
            scopes.current = outer
            demux.unclaim(channel_id)

    def collect(self) -> None:
        """Release the channel; events still queued for it are dropped."""
        conn, channel_id = self.connection, self.channel_id
        if conn is not None and conn.demux is not None and channel_id is not None:
            conn.demux.close_slot(channel_id)
        super().collect()

    def dispatch_method(self, method_sig: Any, payload: Any, content: Any) -> Any:
        """Dispatch one incoming method; an empty message body is ``b''``, never ``''``.

        A ``basic.ack``, what a confirm-mode channel gets for every publish, is
        decoded and handed to the ``basic_ack`` listeners here, as py-amqp
        would, without its generic path (a table lookup, a ``KeyError`` caught,
        a field-by-field decoder). Nobody waits for one through py-amqp's
        ``wait()``: its own publisher confirms are off (see :class:`Driver`).
        A closing channel leaves it to py-amqp, which ignores it.
        """
        if method_sig == _BASIC_ACK and not self.is_closing:
            delivery_tag, bits = _ACK_ARGUMENTS.unpack_from(payload, 4)
            multiple = bool(bits & 1)
            for listener in self.events["basic_ack"]:
                listener(delivery_tag, multiple)
            return None
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
    #: Who reads and who gets what was read, once :meth:`share` was called.
    demux: Demux | None = None
    #: The socket reads (set by :meth:`share`).
    reads: BufferedReads | None = None

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        wanted_channel_max: int | None = None,
        wanted_frame_max: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Frames encoded apart and sent by whichever thread is free (see framing).
        kwargs.setdefault("frame_writer", frame_writer)
        # Publisher confirms are brokerpool's (broker.messaging.confirms): py-amqp's
        # own, which waits for basic.ack inside basic_publish, is never on, so every
        # basic.ack goes to the channel's listeners (see DriverChannel.dispatch_method).
        kwargs["confirm_publish"] = False
        super().__init__(**kwargs)
        self.tls_context = tls_context
        self.server_hostname = server_hostname
        self.wanted_channel_max = wanted_channel_max
        self.wanted_frame_max = wanted_frame_max
        #: Held while a channel id is taken (py-amqp's allocation is not atomic).
        self.channel_lock = threading.Lock()
        #: What the calling thread waits for inside py-amqp (``.current``: a scope of the demux).
        self.scopes = threading.local()
        self._writes_lock = threading.Lock()
        self._tick_lock = threading.Lock()

    # -- sharing between threads ------------------------------------------------

    def share(self) -> None:
        """After the handshake: reads go through a demux, so threads may share the connection."""
        transport = self.transport
        tls = isinstance(transport, TLSSocketTransport)
        self.reads = BufferedReads(transport, tls=tls, guard=transport.io_lock if tls else None)
        demux = Demux(self.is_consuming)
        for channel_id in self.channels or ():
            if channel_id:
                demux.open_slot(channel_id)
        self.demux = demux

    def collect(self) -> None:
        """Tear down (py-amqp's); every thread waiting on the connection raises."""
        demux = self.demux
        if demux is not None:
            demux.fail(amqp.RecoverableConnectionError("connection closed"))
        super().collect()

    def is_consuming(self, channel_id: int) -> bool:
        """Whether the channel has consumers (any draining thread may take its deliveries)."""
        channels = self.channels
        chan = channels.get(channel_id) if channels else None
        return chan is not None and bool(chan.callbacks)

    def channel(self, channel_id: int | None = None, callback: Any = None) -> Any:
        """Open a channel (py-amqp's, with the channel id taken under :attr:`channel_lock`)."""
        if self.channels is None:
            raise amqp.RecoverableConnectionError("Connection already closed.")
        with self.channel_lock:
            found = self.channels.get(channel_id) if channel_id is not None else None
            if found is not None:
                return found
            chan = self.Channel(self, channel_id, on_open=callback)
        chan.open()
        return chan

    def on_inbound_method(
        self, channel_id: int, method_sig: Any, payload: Any, content: Any
    ) -> Any:
        """Dispatch a connection-level method now; queue a channel's for the thread it is for."""
        demux = self.demux
        if demux is None or not channel_id:
            result = super().on_inbound_method(channel_id, method_sig, payload, content)
            if demux is not None:
                demux.connection_event()
            return result
        demux.route(channel_id, (method_sig, payload, content))
        return None

    def heartbeat_tick(self, rate: int = 2) -> None:
        """py-amqp's tick, one thread at a time (it compares counters it then updates)."""
        with self._tick_lock:
            super().heartbeat_tick(rate)

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
        """Start (or join) holding the calling thread's frames; pair with :meth:`release_writes`."""
        with self._writes_lock:
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
            else:
                buffer.hold()
            self.write_buffer_users += 1
            return buffer

    def release_writes(self) -> None:
        """Send everything held; the last holder removes the buffer.

        Raises:
            OSError: the send failed (the transport is marked disconnected).
        """
        with self._writes_lock:
            buffer = self.write_buffer
            if buffer is None:
                return  # torn down meanwhile
            buffer.unhold()
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

        py-amqp's own reads (the handshake) come here before :meth:`share`:
        nobody ever waits for the answer to a frame that has not left.
        """
        buffer = self.write_buffer
        if buffer is not None:
            buffer.flush()
        return _blocking_read(self, timeout)

    def read_frame(self, timeout: float | None) -> None:
        """Read one frame within ``timeout`` seconds and route it (the demux's leader calls this).

        Held frames are sent first; with heartbeats on, py-amqp's tick runs after
        the read, also after one that timed out (a silent socket is when a dead
        peer shows), never before: frames that queued up while every thread was
        busy elsewhere must count as signs of life.

        Raises:
            TimeoutError: no whole frame arrived in time.
        """
        buffer = self.write_buffer
        if buffer is not None:
            buffer.flush()
        reads = self.reads
        assert reads is not None
        reads.deadline = None if timeout is None else monotonic() + timeout
        try:
            frame = reads.read_frame()
        except TimeoutError:
            if self.heartbeat:
                self.heartbeat_tick()
            raise
        except OSError as exc:
            if exc.errno not in _TRANSIENT:  # as py-amqp's reader: the link is gone
                self.transport.connected = False
            raise
        self.on_inbound_frame(frame)
        if self.heartbeat:
            self.heartbeat_tick()

    def _read_arrived(self) -> None:
        """Read the frames that have arrived, without waiting (at most a bounded number)."""
        reads = self.reads
        assert reads is not None
        for _ in range(_POLL_FRAMES):
            # Buffered bytes count (a frame read in part is invisible to poll).
            if not reads.readable(0):
                return
            try:
                self.read_frame(0)
            except TimeoutError:
                return

    def poll_channel(self, channel_id: int) -> None:
        """Dispatch on this thread what has arrived for the channel; never waits.

        py-amqp does ``drain_events(timeout=0)`` before every publish, so that
        ``connection.blocked``, returns and errors are seen early; that costs
        three system calls and an exception when nothing has arrived, which is
        nearly always. Here one ``poll`` finds that out (none at all while
        another thread reads: it routes what arrives).
        """
        demux = self.demux
        if demux is None:
            return
        got = demux.poll(channel_id, self._read_arrived)
        while got is not None:
            self._dispatch(got)
            got = demux.poll(channel_id, _nothing)

    def wait_channel(self, channel_id: int, deadline: float | None) -> None:
        """Dispatch the channel's next event on this thread, waiting until ``deadline``.

        Raises:
            TimeoutError: nothing arrived for the channel by ``deadline``.
        """
        demux = self.demux
        assert demux is not None
        demux.claim(channel_id)
        try:
            self._next(channel_id, deadline)
        finally:
            demux.unclaim(channel_id)

    def drain_events(self, timeout: float | None = None) -> None:
        """Read until one method or message of the calling thread's scope has been dispatched.

        Called by py-amqp itself (while a channel waits for a reply, or the
        connection for ``close-ok``). Unbounded waits become bounded by
        :attr:`deadline`, and heartbeat-aware when heartbeats are on.
        """
        deadline = self.deadline
        if timeout is not None:
            limit = monotonic() + timeout
            deadline = limit if deadline is None else min(deadline, limit)
        if self.demux is None:
            if deadline is not None or self.heartbeat:
                self._drain_unshared(deadline)
                return
            while not self.blocking_read(timeout):
                pass
            return
        self._next(getattr(self.scopes, "current", CONNECTION), deadline)

    def drain_until(self, deadline: float | None) -> None:
        """Dispatch at least one event for a draining thread; ``socket.timeout`` at ``deadline``.

        Heartbeat frames do not count as events and do not extend the wait.
        With heartbeats on, the reading thread waits in slices of a quarter
        interval and runs :meth:`heartbeat_tick` between them: it sends our
        heartbeats and raises ``ConnectionForced('Too many heartbeats missed')``
        for a silent peer, even when ``deadline`` is ``None``.
        """
        if self.demux is None:
            self._drain_unshared(deadline)
            return
        self._next(DRAIN, deadline)

    def _next(self, scope: int, deadline: float | None) -> None:
        demux = self.demux
        assert demux is not None
        buffer = self.write_buffer
        if buffer is not None:
            buffer.flush()  # what this thread waits for may answer a held frame
        interval = self.heartbeat or 0
        got = demux.next_event(scope, deadline, self.read_frame, interval / 4 if interval else None)
        if got is not None:
            self._dispatch(got)

    def _dispatch(self, got: tuple[int, Item]) -> None:
        channel_id, (method_sig, payload, content) = got
        channels = self.channels
        chan = channels.get(channel_id) if channels else None
        if chan is not None:
            chan.dispatch_method(method_sig, payload, content)

    def _drain_unshared(self, deadline: float | None) -> None:
        """:meth:`drain_until` during the handshake, before :meth:`share`."""
        interval = self.heartbeat or 0
        piece = interval / 4 if interval else None
        while True:
            if deadline is None:
                wait = piece
            else:
                wait = max(deadline - monotonic(), 0.0)
                if piece is not None and piece < wait:
                    wait = piece
            try:
                if self.blocking_read(wait):
                    return
            except TimeoutError:
                if deadline is not None and monotonic() >= deadline:
                    if interval:
                        self.heartbeat_tick()
                    raise
            if interval:
                self.heartbeat_tick()


_blocking_read = amqp.Connection.blocking_read

#: Frames one look before a publish reads at most (the rest wait for the next reader).
_POLL_FRAMES = 64


def _nothing() -> None:
    """Nothing to read (a second look at a channel's inbox)."""


def _smaller(server: int, wanted: int | None) -> int:
    """The smaller non-zero limit (0 means 'no limit' in AMQP tuning)."""
    if not wanted:
        return server
    if not server:
        return wanted
    return min(server, wanted)
