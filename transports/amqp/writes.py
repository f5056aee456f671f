"""Coalesced socket writes for pipelined publishing on the AMQP transport.

py-amqp sends every frame with its own ``sendall``: ten thousand pipelined
publishes cost ten thousand system calls, and as many small reads on the
broker's side. A :class:`WriteBuffer` installed on a connection's py-amqp
transport collects those frames and sends them in chunks of about
``limit`` bytes instead.

What keeps that safe when threads share the connection:

* Frames enter the buffer whole and in order: py-amqp writes the frames of
  one method (method, header, body) under its frame-writer lock, and
  everything the connection sends goes through the buffer while it is
  installed, so nothing overtakes a buffered publish. Every send, from
  whichever thread, takes the buffer's lock, so two sends never interleave.
* Only the frames of threads inside a ``buffered_writes()`` block (the
  *holders*, :meth:`WriteBuffer.hold`) are held. A write from any other
  thread (a plain publish, an ack, the heartbeat thread) sends what is
  buffered, then itself, at once: nobody else's frames wait behind a batch,
  and they bound how long buffered frames can wait.
* A holder's own writes are sent once ``limit`` bytes are pending or the
  oldest pending byte is ``max_delay`` seconds old (checked on each write).
* When nobody writes or reads -- a holder publishes once, then spends time
  in its own code, with heartbeats off -- an :class:`IdleFlusher` sends what
  is pending once its oldest byte is ``max_delay`` old (see below).
* The driver calls :meth:`WriteBuffer.flush` before every read and before a
  thread starts waiting for an event
  (:meth:`transports.amqp.driver.Driver.read_frame`): nobody ever waits for
  a reply to frames that are still here.
* :meth:`WriteBuffer.close` sends the rest and puts the transport back as it
  was. A failed send marks the transport disconnected (the stream is cut at
  an unknown point) and raises the socket error, which the caller translates.
* Over TLS every send also holds the transport's I/O lock (``guard``),
  taken before the buffer's own lock everywhere, because an OpenSSL
  connection must not be written by one thread while another reads it.

Why a thread per connection for the idle case. Only a thread can send while
every holder is away in its own code, and the heartbeat thread exists only
when heartbeats are on. A timer thread per batch would cost a thread start
(about 0.1 ms here) on every ``with producer.confirms():``, as much as a
whole one-message batch; one process-wide timer would let a broker that
stops reading one connection (a blocked connection fills its socket) stall
the flushes of all the others. So each connection gets one
:class:`IdleFlusher` thread with its first pipelined batch; it sleeps on a
condition between batches, polls its buffer every ``max_delay`` during one
(no cost on the publish path, and a pending byte waits at most about
``max_delay``), and ends when the connection is torn down or
garbage-collected.

:class:`HeldWrites` is what ``AmqpChannel.buffered_writes()`` returns (a
:class:`transports.base.WriteHold`): one holder of a connection's buffer
(several may share it, on one thread or several).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from time import monotonic
from types import TracebackType
from typing import Any, Self

from transports.amqp.pyamqp_internals import RawWrites

__all__ = ["DEFAULT_LIMIT", "DEFAULT_MAX_DELAY", "HeldWrites", "IdleFlusher", "WriteBuffer"]

logger = logging.getLogger(__name__)

#: Bytes collected before they are sent.
DEFAULT_LIMIT = 65536
#: Seconds the oldest buffered byte may wait while the owner keeps writing.
DEFAULT_MAX_DELAY = 0.05


class WriteBuffer:
    """Collects one py-amqp transport's outgoing frames; see the module docstring.

    Installing it diverts the transport's raw socket writes (see
    :class:`~transports.amqp.pyamqp_internals.RawWrites`) until :meth:`close`.
    The installing thread holds it (as one :meth:`hold`); other threads join
    with :meth:`hold`.

    Args:
        transport: a connected py-amqp transport.
        limit: send once this many bytes are pending.
        max_delay: send once the oldest pending byte is this many seconds old.
        guard: held around a send that did not come through the transport's
            ``write`` (:meth:`flush`, :meth:`flush_idle`): the TLS transport's
            I/O lock; nothing for plain sockets.
    """

    def __init__(
        self,
        transport: Any,
        limit: int = DEFAULT_LIMIT,
        max_delay: float = DEFAULT_MAX_DELAY,
        guard: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.limit = limit
        self.max_delay = max_delay
        self._guard: AbstractContextManager[Any] = guard or contextlib.nullcontext()
        self.sends = 0  # socket writes made through the buffer (for tests and repr)
        self._socket_transport = transport
        self._pending = bytearray()
        self._since = 0.0  # when the oldest pending byte arrived
        self._lock = threading.Lock()
        # thread -> open holds; the thread that installs the buffer holds it once
        self._holders: dict[int, int] = {threading.get_ident(): 1}
        self._closed = False
        self._diverted = RawWrites(transport, self.write)
        self._raw = self._diverted.original

    @property
    def pending(self) -> int:
        """Bytes waiting to be sent."""
        return len(self._pending)

    def hold(self) -> None:
        """The calling thread's frames are held from now on (until as many :meth:`unhold`)."""
        me = threading.get_ident()
        with self._lock:
            self._holders[me] = self._holders.get(me, 0) + 1

    def unhold(self) -> None:
        """End one :meth:`hold` of the calling thread."""
        me = threading.get_ident()
        with self._lock:
            left = self._holders.get(me, 0) - 1
            if left > 0:
                self._holders[me] = left
            else:
                self._holders.pop(me, None)

    def write(self, data: Any) -> None:
        """Take one frame (or a piece of a large one) from py-amqp's frame writer."""
        with self._lock:
            pending = self._pending
            if self._closed or threading.get_ident() not in self._holders:
                # Not a holder (a heartbeat, another thread's publish or ack):
                # everything goes out now, in order.
                self._send_locked()
                self._send_raw(data)
                return
            if not pending:
                self._since = monotonic()
            # A copy: py-amqp hands over a view of a buffer it reuses for the next frame.
            pending += data
            if len(pending) >= self.limit or monotonic() - self._since >= self.max_delay:
                self._send_locked()

    def flush(self) -> None:
        """Send everything pending now.

        Raises:
            OSError: the send failed; the transport is marked disconnected.
        """
        if self._pending:
            with self._guard, self._lock:
                self._send_locked()

    def due_in(self) -> float | None:
        """Seconds until the oldest pending byte is ``max_delay`` old (``None``: nothing pending).

        Read without the lock: a stale answer only moves the next look.
        """
        if not self._pending or self._closed:
            return None
        return self._since + self.max_delay - monotonic()

    def flush_idle(self) -> bool:
        """Send what is pending if its oldest byte is ``max_delay`` old; True if it did.

        For the :class:`IdleFlusher` thread.

        Raises:
            OSError: the send failed; the transport is marked disconnected.
        """
        with self._guard, self._lock:
            if self._closed or not self._pending or monotonic() - self._since < self.max_delay:
                return False
            self._send_locked()
            return True

    def close(self) -> None:
        """Send what is pending and give the transport its own writes back.

        The transport is restored even when the final send fails (that error
        is raised).
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._pending.clear()
                self._diverted.restore()

    def _send_locked(self) -> None:
        pending = self._pending
        if pending:
            # Emptied before the send: what arrived on the other end is no longer pending.
            self._pending = bytearray()
            self._send_raw(pending)

    def _send_raw(self, data: Any) -> None:
        try:
            self._raw(data)
        except OSError:
            # Part of the data may have left: the stream is unusable now.
            self._socket_transport.connected = False
            raise
        self.sends += 1

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={len(self._pending)}"
        return (
            f"<WriteBuffer limit={self.limit} {state} holders={len(self._holders)} "
            f"sends={self.sends}>"
        )


class IdleFlusher:
    """A connection's thread that sends held frames nobody else sends in time.

    Started with the connection's first pipelined batch; :meth:`watch` gives
    it the buffer of each batch (``None`` between batches, when it sleeps
    until the next). While it watches a buffer it looks every ``max_delay``
    and calls :meth:`WriteBuffer.flush_idle` once the oldest pending byte is
    due. See the module docstring for why a thread per connection.

    Args:
        name: names the thread (the connection, for debugging).
    """

    def __init__(self, name: str) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._buffer: WriteBuffer | None = None
        self._stopped = False
        self.flushes = 0  # sends made by this thread (for tests and repr)
        self._thread = threading.Thread(
            target=self._run, name=f"brokerpool-write-flush {name}", daemon=True
        )
        self._thread.start()

    @property
    def is_alive(self) -> bool:
        """True until the thread has ended (after :meth:`stop`)."""
        return self._thread.is_alive()

    def watch(self, buffer: WriteBuffer | None) -> None:
        """Look after ``buffer`` from now on (``None``: nothing to look after)."""
        with self._wake:
            self._buffer = buffer
            self._wake.notify()

    def stop(self) -> None:
        """End the thread (it does not send what it watched); safe from any thread, repeatable."""
        with self._wake:
            self._stopped = True
            self._buffer = None
            self._wake.notify()

    def _run(self) -> None:
        while (buffer := self._next_due()) is not None:
            # Outside our lock: the send takes the buffer's (and, over TLS, the
            # transport's) lock, which the owner may hold while it calls watch().
            # Counted before the send, so whoever sees the bytes arrive sees the count.
            self.flushes += 1
            try:
                if not buffer.flush_idle():
                    self.flushes -= 1  # a holder sent them first
            except OSError as exc:
                # The transport is marked disconnected: its owner finds out at
                # its next call. Nothing more to send here.
                logger.debug("idle flush failed: %r", exc)
                self.watch(None)

    def _next_due(self) -> WriteBuffer | None:
        """Wait until the watched buffer has a byte due; ``None`` once stopped."""
        wake = self._wake
        with wake:
            while not self._stopped:
                buffer = self._buffer
                if buffer is None:
                    wake.wait()
                    continue
                due = buffer.due_in()
                if due is not None and due <= 0:
                    return buffer
                # Nothing pending: look again in max_delay, which bounds the wait
                # of a byte that arrives meanwhile to about max_delay.
                wake.wait(buffer.max_delay if due is None else due)
            return None

    def __repr__(self) -> str:
        with self._wake:
            state = "stopped" if self._stopped else "watching" if self._buffer else "idle"
        return f"<IdleFlusher {state} flushes={self.flushes}>"


class HeldWrites:
    """One ``AmqpChannel.buffered_writes()`` block (also usable without ``with``).

    :meth:`start` begins holding frames, :meth:`release` sends them and ends
    it; ``quiet=True`` (used while another exception propagates) drops the
    connection on a failed send without raising.

    Args:
        channel_id: the channel holding (for ``repr``).
        hold: called once by :meth:`start` with ``limit``.
        release: called once by :meth:`release` with ``quiet``.
        limit: bytes collected before they are sent.
    """

    __slots__ = ("_active", "_channel_id", "_hold", "_limit", "_release")

    def __init__(
        self,
        channel_id: int,
        hold: Callable[[int], None],
        release: Callable[[bool], None],
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._channel_id = channel_id
        self._hold = hold
        self._release = release
        self._limit = limit
        self._active = False

    def start(self) -> None:
        """Begin holding frames (once)."""
        if not self._active:
            self._hold(self._limit)
            self._active = True

    def release(self, quiet: bool = False) -> None:
        """Send what is held and stop holding (once)."""
        if self._active:
            self._active = False
            self._release(quiet)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release(quiet=exc is not None)

    def __repr__(self) -> str:
        state = "holding" if self._active else "released"
        return f"<HeldWrites chan:{self._channel_id} {state}>"
