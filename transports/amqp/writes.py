"""Coalesced socket writes for pipelined publishing on the AMQP transport.

py-amqp sends every frame with its own ``sendall``: ten thousand pipelined
publishes cost ten thousand system calls, and as many small reads on the
broker's side. A :class:`WriteBuffer` installed on a connection's py-amqp
transport collects those frames and sends them in chunks of about
``limit`` bytes instead.

What keeps that safe:

* Frames enter the buffer whole and in order: py-amqp writes each frame (or
  each piece of a large one) under its frame-writer lock, and everything the
  connection sends goes through the buffer while it is installed, so nothing
  overtakes a buffered publish.
* A write from any other thread than the owner's (the heartbeat thread) sends
  what is buffered, then itself, at once: heartbeats are never held back, and
  they also bound how long buffered frames can wait while the owner is busy.
* The owner's own writes are sent once ``limit`` bytes are pending or the
  oldest pending byte is ``max_delay`` seconds old (checked on each write).
* The driver calls :meth:`WriteBuffer.flush` before every read
  (:meth:`transports.amqp.driver.Driver.blocking_read`): nobody ever waits
  for a reply to frames that are still here.
* :meth:`WriteBuffer.close` sends the rest and puts the transport back as it
  was. A failed send marks the transport disconnected (the stream is cut at
  an unknown point) and raises the socket error, which the caller translates.

:class:`HeldWrites` is what ``AmqpChannel.buffered_writes()`` returns (a
:class:`transports.base.WriteHold`): one holder of a connection's buffer
(several may share it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import Any, Self

from transports.amqp.pyamqp_internals import RawWrites

__all__ = ["DEFAULT_LIMIT", "DEFAULT_MAX_DELAY", "HeldWrites", "WriteBuffer"]

#: Bytes collected before they are sent.
DEFAULT_LIMIT = 65536
#: Seconds the oldest buffered byte may wait while the owner keeps writing.
DEFAULT_MAX_DELAY = 0.05


class WriteBuffer:
    """Collects one py-amqp transport's outgoing frames; see the module docstring.

    Installing it diverts the transport's raw socket writes (see
    :class:`~transports.amqp.pyamqp_internals.RawWrites`) until :meth:`close`.

    Args:
        transport: a connected py-amqp transport.
        limit: send once this many bytes are pending.
        max_delay: send once the oldest pending byte is this many seconds old.
    """

    def __init__(
        self, transport: Any, limit: int = DEFAULT_LIMIT, max_delay: float = DEFAULT_MAX_DELAY
    ) -> None:
        self.limit = limit
        self.max_delay = max_delay
        self.sends = 0  # socket writes made through the buffer (for tests and repr)
        self._socket_transport = transport
        self._pending = bytearray()
        self._since = 0.0  # when the oldest pending byte arrived
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._closed = False
        self._diverted = RawWrites(transport, self.write)
        self._raw = self._diverted.original

    @property
    def pending(self) -> int:
        """Bytes waiting to be sent."""
        return len(self._pending)

    def write(self, data: Any) -> None:
        """Take one frame (or a piece of a large one) from py-amqp's frame writer."""
        with self._lock:
            pending = self._pending
            if self._closed or threading.get_ident() != self._owner:
                # A heartbeat from its thread: everything goes out now, in order.
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
            with self._lock:
                self._send_locked()

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
            try:
                self._send_raw(pending)
            finally:
                pending.clear()

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
        return f"<WriteBuffer limit={self.limit} {state} sends={self.sends}>"


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
