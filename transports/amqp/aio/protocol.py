"""The byte-level half of an asyncio AMQP connection: reading, writing, heartbeats.

:class:`AmqpProtocol` is the :class:`asyncio.Protocol` the event loop drives.
It knows frames, not methods: received bytes go to a
:class:`~transports.amqp.aio.frames.FrameDecoder`, whose methods reach the
:class:`FrameSink` (the connection); outgoing frames are collected and sent
in one ``transport.write`` per turn of the event loop (or every
:data:`FLUSH_AT` bytes), so a task publishing in a loop makes a few large
writes instead of one system call per message.

Back-pressure: when the transport's buffer passes its high-water mark, the
loop calls ``pause_writing``; writers then wait in :meth:`AmqpProtocol.writable`
until ``resume_writing``. A publisher that filled :data:`FLUSH_AT` bytes also
passes through :meth:`AmqpProtocol.writable`, which yields to the loop once,
so that incoming frames (confirms, heartbeats) are read and no task step runs
long.

Heartbeats: with an interval ``h``, a timer every ``h / 2`` seconds sends a
heartbeat frame when nothing else was sent meanwhile, and declares the peer
dead when nothing was received for ``2 h`` (``connection_lost`` with
:class:`~broker.errors.HeartbeatTimeout`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from broker.errors import HeartbeatTimeout
from transports.amqp.aio.frames import HEARTBEAT_FRAME, PROTOCOL_HEADER, FrameDecoder

__all__ = ["FLUSH_AT", "AmqpProtocol", "FrameSink"]

logger = logging.getLogger(__name__)

#: Outgoing bytes are sent at once when this many are waiting.
FLUSH_AT = 64 * 1024


class FrameSink(Protocol):
    """What the protocol reports to (the connection)."""

    def on_method(self, channel: int, method_sig: tuple[int, int], buf: bytes, msg: Any) -> None:
        """A method (with its content, for deliveries and returns) arrived."""
        ...

    def on_link_lost(self, exc: BaseException | None) -> None:
        """The socket closed or failed (``exc``), or the peer went silent."""
        ...


class AmqpProtocol(asyncio.Protocol):
    """Frames over one socket; see the module docstring."""

    def __init__(self, sink: FrameSink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._loop = loop
        self._decoder = FrameDecoder(sink.on_method)
        self._stream: asyncio.Transport | None = None
        self._out = bytearray()
        self._flush_scheduled = False
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self.must_yield = False  # a writer filled FLUSH_AT bytes: let the loop read
        self._last_read = loop.time()
        self._last_write = loop.time()
        self._heartbeat = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._lost: BaseException | None = None
        self.closed = False

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._stream = transport
        transport.write(PROTOCOL_HEADER)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        try:
            self._decoder.feed(data)
        except Exception as exc:  # a malformed stream: nothing after it can be trusted
            logger.debug("AMQP framing error: %r", exc)
            self.abort(exc)

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_heartbeats()
        self.closed = True
        self._stream = None
        self._out.clear()
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)  # writers wake and find the link gone
        self._sink.on_link_lost(self._lost if self._lost is not None else exc)

    def pause_writing(self) -> None:
        self._paused = True
        self.must_yield = True

    def resume_writing(self) -> None:
        self._paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    # -- writing ----------------------------------------------------------------

    def write(self, data: Any) -> None:
        """Queue ``data`` (one method's frames) for the next flush (dropped once closed)."""
        if self.closed:
            return
        out = self._out
        out += data
        if len(out) >= FLUSH_AT:
            self.flush()
            self.must_yield = True
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send everything queued now."""
        self._flush_scheduled = False
        transport = self._stream
        if not self._out or transport is None:
            return
        data = bytes(self._out)
        self._out.clear()
        self._last_write = self._loop.time()
        transport.write(data)

    async def writable(self) -> None:
        """Wait while the transport is paused; otherwise yield to the loop once."""
        self.must_yield = False
        while self._paused and not self.closed:
            if self._resumed is None:
                self._resumed = self._loop.create_future()
            # shield: one writer's cancellation must not cancel the others' wait.
            await asyncio.shield(self._resumed)
        else:
            await asyncio.sleep(0)

    # -- heartbeats ---------------------------------------------------------------

    def start_heartbeats(self, interval: float) -> None:
        """Send and expect heartbeats every ``interval`` seconds (0: off)."""
        self._heartbeat = interval
        if interval > 0:
            self._timer = self._loop.call_later(interval / 2, self._beat)

    def _beat(self) -> None:
        interval = self._heartbeat
        now = self._loop.time()
        if now - self._last_read > 2 * interval:
            self.abort(
                HeartbeatTimeout(
                    f"the broker sent nothing for more than two heartbeat intervals "
                    f"(heartbeat={interval:g} s): the broker or the network path is dead"
                )
            )
            return
        if now - self._last_write >= interval / 2 and self._stream is not None:
            self._out += HEARTBEAT_FRAME
            self.flush()
        self._timer = self._loop.call_later(interval / 2, self._beat)

    def _stop_heartbeats(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued, then close the socket; nothing more is written."""
        self._stop_heartbeats()
        transport = self._stream
        if transport is not None:
            self.flush()
            transport.close()
        self.closed = True

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the socket without waiting; ``connection_lost`` reports ``exc``.

        The link counts as closed from now on, not only from ``connection_lost``
        (which the loop calls later): a write in between would be lost silently.
        """
        self._stop_heartbeats()
        if exc is not None and self._lost is None:
            self._lost = exc
        transport = self._stream
        if transport is not None:
            # What the kernel takes without waiting still goes, as with a blocking
            # socket that is shut down after its last send; the rest is dropped.
            self.flush()
            transport.abort()
        self.closed = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "paused" if self._paused else "open"
        return f"<AmqpProtocol {state} queued={len(self._out)} heartbeat={self._heartbeat:g}>"
