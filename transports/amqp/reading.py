"""Socket reads of one AMQP connection: buffered, bounded by a deadline, not by a socket timeout.

py-amqp reads a frame with three ``recv`` calls (header, payload, end byte)
and bounds them by setting the socket's timeout. Once several threads share
a connection that timeout is shared too: a thread reading with a 0.25 s
slice would give a publisher's ``sendall`` on the same socket the same
0.25 s (or none at all, for a poll), and a write that times out cuts the
stream mid-frame. So the socket stays in blocking mode for everyone, and
:class:`BufferedReads`, installed as the transport's receive function,

* waits for the socket to become readable with ``poll`` until
  :attr:`BufferedReads.deadline` (raising :class:`socket.timeout` then, which
  py-amqp's frame reader handles like a read timeout, keeping a partly read
  frame for the next read), and only then calls ``recv``, which returns at
  once;
* receives up to 64 KB per system call and cuts whole frames out of that
  buffer (:meth:`BufferedReads.read_frame`, which the driver reads with
  instead of py-amqp's frame reader: one call per frame, where py-amqp makes
  three reads of the socket or of its own buffer): a delivery (three frames)
  usually costs one ``recv``, where py-amqp makes nine. py-amqp's own reads,
  if any, are served from the same buffer (:meth:`BufferedReads.recv`);
* over TLS, holds the transport's I/O lock only for the ``recv`` itself, so a
  thread writing waits for a read of bytes that have arrived, never for a
  wait. Bytes TLS has already decrypted count as readable.

Only the thread that leads the reading (see :mod:`transports.amqp.demux`)
uses it, so its poller is never used by two threads at once.
"""

from __future__ import annotations

import contextlib
import select
import struct
from contextlib import AbstractContextManager
from time import monotonic
from typing import Any

from amqp.exceptions import UnexpectedFrame

from transports.amqp.pyamqp_internals import RawReads, take_unread_input

__all__ = ["CHUNK", "BufferedReads", "Frame"]

#: Bytes asked for per ``recv``.
CHUNK = 65536

#: ``(frame type, channel, payload)``, as py-amqp's frame reader returns a frame.
Frame = tuple[int, int, bytes]

_FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size
_FRAME_END = 0xCE

_READABLE = select.POLLIN | select.POLLERR | select.POLLHUP


class BufferedReads:
    """Serves a connected py-amqp transport's reads; see the module docstring.

    Args:
        transport: a connected py-amqp socket transport.
        tls: the transport is a TLS one (decrypted bytes may wait in the SSL object).
        guard: held around each ``recv`` (the TLS transport's I/O lock).
    """

    def __init__(
        self,
        transport: Any,
        *,
        tls: bool = False,
        guard: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.deadline: float | None = None
        self._socket = transport.sock
        self._tls = tls
        self._guard: AbstractContextManager[Any] = guard or contextlib.nullcontext()
        # From here on every read is ours: a frame py-amqp began reading continues here.
        self._data = take_unread_input(transport)
        self._pos = 0
        self.fills = 0  # recv calls made (for tests and repr)
        # eventlet's monkey patching removes select.poll; select.select remains.
        make_poller = getattr(select, "poll", None)
        self._poller = make_poller() if make_poller is not None else None
        if self._poller is not None:
            self._poller.register(self._socket, _READABLE)
        self._diverted = RawReads(transport, self.recv)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed to py-amqp."""
        return len(self._data) - self._pos

    def readable(self, timeout: float | None) -> bool:
        """Whether a read would find something within ``timeout`` seconds (0: now)."""
        return bool(self.buffered) or self._arrived(timeout)

    def _arrived(self, timeout: float | None) -> bool:
        """Whether the socket has bytes for ``recv`` within ``timeout`` seconds (0: now)."""
        if self._tls and self._pending():
            return True
        wait = None if timeout is None else max(timeout, 0.0)
        if self._poller is None:
            return bool(select.select([self._socket], [], [], wait)[0])
        return bool(self._poller.poll(None if wait is None else wait * 1000.0))

    def _pending(self) -> int:
        with self._guard:
            return int(self._socket.pending())

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b''`` at the end of the stream.

        Raises:
            socket.timeout: nothing arrived by :attr:`deadline`.
        """
        data, pos = self._data, self._pos
        if pos >= len(data):
            data = self._fill()
            pos = 0
            if not data:
                return b""
        end = pos + n
        self._pos = end
        return data[pos:end] if pos or end < len(data) else data

    def read_frame(self) -> Frame:
        """The next frame, waiting for its bytes until :attr:`deadline`.

        Raises:
            socket.timeout: the frame is not all here by :attr:`deadline`;
                what arrived of it is kept for the next call.
            OSError: the peer closed the stream (``recv`` returned nothing),
                or the socket failed.
            amqp.exceptions.UnexpectedFrame: the frame does not end with the
                frame-end octet (the stream is out of step).
        """
        data, pos = self._data, self._pos
        while True:
            if len(data) - pos >= 7:
                kind, channel, size = _FRAME_HEADER.unpack_from(data, pos)
                end = pos + 7 + size
                if end < len(data):
                    if data[end] != _FRAME_END:
                        raise UnexpectedFrame(
                            f"Received frame_end {data[end]:#04x} while expecting 0xce"
                        )
                    self._pos = end + 1
                    return kind, channel, data[pos + 7 : end]
            more = self._receive()
            if not more:
                raise OSError("Server unexpectedly closed connection")
            data = data[pos:] + more if pos < len(data) else more
            pos = 0
            self._data, self._pos = data, 0

    def _fill(self) -> bytes:
        data = self._receive()
        self._data, self._pos = data, 0
        return data

    def _receive(self) -> bytes:
        """Bytes from the socket, after waiting until :attr:`deadline` for some."""
        deadline = self.deadline
        timeout = None if deadline is None else deadline - monotonic()
        if not self._arrived(timeout):  # what is buffered (part of a frame) is not enough
            raise TimeoutError("timed out")
        with self._guard:
            data: bytes = self._socket.recv(CHUNK)
        self.fills += 1
        return data

    def restore(self) -> None:
        """Give the transport its own reads back (nothing buffered may be left)."""
        self._diverted.restore()

    def __repr__(self) -> str:
        return f"<BufferedReads buffered={self.buffered} fills={self.fills}>"
