"""A loopback TCP proxy that injects network faults between a client and a broker.

No toxiproxy server can be installed here, so reliability tests put this proxy
between the code under test and a RabbitMQ node and break the link on demand.
One background thread runs a ``selectors`` loop for all connections::

    with FaultProxy("127.0.0.1", node.port) as proxy:
        conn = amqp.Connection(host=proxy.host)   # or broker.Connection(proxy.url_for())
        proxy.cut(rst=True)                       # the client sees ConnectionResetError

Faults (each call returns once the loop thread has applied it): ``cut(rst)``
closes live connections with FIN or RST; ``refuse()`` closes the port until
``accept()``; ``latency(s)`` delays every chunk both ways; ``blackhole()`` makes
a silent dead peer (sockets stay open, bytes and closes are dropped);
``forward()`` / ``heal()`` undo them all. Counters: ``connections_accepted``,
``bytes_client_to_server``, ``bytes_server_to_client``, ``bytes_dropped``,
``active_connections``. A refusal or reset from the target reaches the client
as a reset (RST), the closest a proxy can get to passing on a refusal.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["PROXY_PORTS", "FaultProxy"]

#: Ports tried when ``listen_port=0``: outside the ephemeral range, so that
#: :meth:`FaultProxy.accept` can bind the same port again after a refuse.
PROXY_PORTS = range(15673, 16673)
_CHUNK = 65536
_HIGH_WATER = 4 * 1024 * 1024  # stop reading a side while this much waits for the other
_R, _W = selectors.EVENT_READ, selectors.EVENT_WRITE
_T = TypeVar("_T")
_CONNECTING = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN}


class _Side:
    """One socket of a proxied connection and the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock
        self.out = bytearray()
        self.later: collections.deque[tuple[float, bytes]] = collections.deque()
        self.later_bytes = 0
        self.eof = False  # read EOF from this socket
        self.wr_shut = False  # we sent FIN on this socket
        self.mask = 0

    @property
    def pending(self) -> int:
        return len(self.out) + self.later_bytes


class _Link:
    """A client connection and its upstream connection to the target."""

    def __init__(self, client: socket.socket, server: socket.socket | None) -> None:
        self.client = _Side(client)
        self.server = _Side(server)
        self.connecting = server is not None
        self.blackholed = server is None

    def other(self, side: _Side) -> _Side:
        return self.server if side is self.client else self.client


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    try:
        # TIME_WAIT leftovers of earlier connections must not block a re-listen.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _listen_any(port: int) -> socket.socket:
    """Listen on ``port``, or if 0 on a free one of :data:`PROXY_PORTS`.

    The search starts at a random offset so that a port freed by ``refuse()``
    is unlikely to be taken by a proxy of another pytest process meanwhile.
    """
    start = random.randrange(len(PROXY_PORTS))
    for candidate in [port] if port else [*PROXY_PORTS[start:], *PROXY_PORTS[:start]]:
        with contextlib.suppress(OSError):
            return _listen(candidate)
    return _listen(port or PROXY_PORTS[-1])  # raises the bind error


def _close(sock: socket.socket, rst: bool = False) -> None:
    if rst:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """Forward ``127.0.0.1:port`` to ``target_host:target_port``, breaking it on demand.

    Args:
        target_host: Where connections go (a loopback address).
        target_port: The target's port, e.g. ``node.port``.
        listen_port: Port to listen on; 0 picks a free one in :data:`PROXY_PORTS`.
    """

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = _listen_any(listen_port)
        self.port: int = self._listener.getsockname()[1]
        self.connections_accepted = 0
        self.bytes_client_to_server = 0
        self.bytes_server_to_client = 0
        self.bytes_dropped = 0
        self._delay = 0.0
        self._blackhole = False
        self._links: set[_Link] = set()
        self._commands: collections.deque[tuple[Callable[[], Any], Future[Any]]] = (
            collections.deque()
        )
        self._stopping = False
        self._error: BaseException | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, _R, "wake")
        self._sel.register(self._listener, _R, "listener")
        self._thread = threading.Thread(target=self._run, name=f"FaultProxy:{self.port}")
        self._thread.daemon = True
        self._thread.start()

    # -- addresses --------------------------------------------------------------

    @property
    def host(self) -> str:
        """``"127.0.0.1:PORT"``, the form py-amqp's ``host=`` takes."""
        return f"127.0.0.1:{self.port}"

    def url_for(
        self, userid: str = "guest", password: str = "guest", vhost: str = "/", scheme: str = "amqp"
    ) -> str:
        """A broker URL that goes through this proxy, e.g. ``amqp://guest:guest@127.0.0.1:P//``."""
        return f"{scheme}://{userid}:{password}@127.0.0.1:{self.port}/{vhost.lstrip('/') or '/'}"

    @property
    def active_connections(self) -> int:
        """Proxied connections with at least one socket still open."""
        return len(self._links)

    @property
    def mode(self) -> str:
        """The current faults, e.g. ``"forward"`` or ``"refuse+latency(0.2)"``."""
        parts = []
        if self._listener is None:
            parts.append("refuse")
        if self._blackhole:
            parts.append("blackhole")
        if self._delay:
            parts.append(f"latency({self._delay:g})")
        return "+".join(parts) or "forward"

    def __repr__(self) -> str:
        mode = self.mode if self._thread.is_alive() else "closed"
        return (
            f"<FaultProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} "
            f"mode={mode} active={self.active_connections}>"
        )

    # -- fault controls ---------------------------------------------------------

    def forward(self) -> None:
        """Forward normally: undo refuse, latency and blackhole.

        Connections that were blackholed are reset (RST on both sides): bytes
        were dropped, so their streams can never be resumed. This is what a
        healed partition does to stale TCP connections; a client that already
        gave up sees nothing, the broker cleans up at once.
        """

        def apply() -> None:
            self._delay = 0.0
            self._blackhole = False
            if self._listener is None:
                self._accept_again()
            for link in [link for link in self._links if link.blackholed]:
                self._drop(link, rst=True)

        self._call(apply)

    heal = forward

    def cut(self, rst: bool = False) -> int:
        """Close every live connection on both sides (FIN, or RST if ``rst``); return how many."""

        def apply() -> int:
            links = list(self._links)
            for link in links:
                self._drop(link, rst=rst)
            return len(links)

        return self._call(apply)

    def refuse(self) -> None:
        """Refuse new connections (the port is closed); live ones carry on."""

        def apply() -> None:
            if self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None

        self._call(apply)

    def accept(self) -> None:
        """Accept new connections again after :meth:`refuse` (same port)."""

        def apply() -> None:
            if self._listener is None:
                self._accept_again()

        self._call(apply)

    def latency(self, seconds: float) -> None:
        """Delay every chunk read from now on by ``seconds``, in both directions."""
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds!r}")

        self._call(lambda: setattr(self, "_delay", float(seconds)))

    def blackhole(self) -> None:
        """Turn every live and new connection into a silent dead peer.

        Sockets stay open; bytes in either direction (and bytes already
        queued) are dropped; a close from either side is not passed on.
        New connections are accepted but never reach the target. Undo with
        :meth:`heal`, which resets the blackholed connections.
        """

        def apply() -> None:
            self._blackhole = True
            for link in list(self._links):
                self._silence(link)

        self._call(apply)

    def close(self) -> None:
        """Stop the thread and close every socket (FIN to both sides)."""
        if not self._stopping and self._thread.is_alive():
            self._call(lambda: setattr(self, "_stopping", True))
            self._thread.join(10.0)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the loop thread ----------------------------------------------------------

    def _accept_again(self) -> None:
        self._listener = _listen(self.port)
        self._sel.register(self._listener, _R, "listener")

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the loop thread (which owns every socket) and wait for it."""
        if not self._thread.is_alive():
            raise RuntimeError(f"{self!r} is closed") from self._error
        done: Future[_T] = Future()
        self._commands.append((fn, done))
        try:
            self._wake_w.send(b"\0")
        except OSError as exc:
            if done.done():
                # The loop, awake anyway, ran the command before the wake-up byte
                # went out; for close() that ends the loop, which closes its sockets.
                return done.result()
            # The loop thread died meanwhile and closed its sockets.
            raise RuntimeError(f"{self!r} stopped: {self._error!r}") from (self._error or exc)
        return done.result(timeout=10.0)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # kept for _call: a dead proxy must say why
            self._error = exc
            raise
        finally:
            for link in list(self._links):
                self._drop(link, rst=False)
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()
            for _fn, done in self._commands:
                done.set_exception(RuntimeError("FaultProxy closed"))

    def _loop(self) -> None:
        while not self._stopping:
            for key, mask in self._sel.select(self._next_timeout()):
                if key.data == "wake":
                    self._wake_r.recv(4096)
                elif key.data == "listener":
                    self._on_accept()
                else:
                    link, side = key.data
                    if link in self._links and side.sock is not None:  # not closed yet
                        self._on_ready(link, side, mask)
            self._release_due()
            while self._commands:
                fn, done = self._commands.popleft()
                try:
                    done.set_result(fn())
                except BaseException as exc:
                    done.set_exception(exc)

    def _next_timeout(self) -> float | None:
        dues = [
            s.later[0][0] for link in self._links for s in (link.client, link.server) if s.later
        ]
        return max(0.0, min(dues) - time.monotonic()) if dues else None

    def _on_accept(self) -> None:
        while self._listener is not None:
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            client.setblocking(False)
            self.connections_accepted += 1
            server = None
            if not self._blackhole:
                server = socket.socket()
                server.setblocking(False)
                if server.connect_ex(self.target) not in _CONNECTING:
                    server.close()  # refused at once: pass it on as a reset
                    _close(client, rst=True)
                    continue
            link = _Link(client, server)
            self._links.add(link)
            self._sync(link)

    def _on_ready(self, link: _Link, side: _Side, mask: int) -> None:
        if side is link.server and link.connecting:
            assert side.sock is not None
            if side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._drop(link, rst=True)  # the target refused: pass it on as a reset
                return
            link.connecting = False
        if mask & _R:
            self._read(link, side)
        if mask & _W and link in self._links and side.sock is not None:
            self._write(link, side)
        if link in self._links:
            self._settle(link)

    def _read(self, link: _Link, side: _Side) -> None:
        assert side.sock is not None
        try:
            data = side.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            if link.blackholed:  # a blackhole passes nothing on, not even a reset
                self._forget(link, side)
            else:
                self._drop(link, rst=True)  # mirror the reset to the other side
            return
        if link.blackholed:
            self.bytes_dropped += len(data)
            if not data:  # a close is not passed on: only this side goes
                self._forget(link, side)
            return
        if not data:
            side.eof = True
            return
        dest = link.other(side)
        if self._delay:
            due = time.monotonic() + self._delay
            if dest.later:
                due = max(due, dest.later[-1][0])  # never reorder the stream
            dest.later.append((due, data))
            dest.later_bytes += len(data)
        else:
            dest.out += data

    def _write(self, link: _Link, side: _Side) -> None:
        assert side.sock is not None
        try:
            sent = side.sock.send(side.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(link, rst=True)
            return
        del side.out[:sent]
        if side is link.server:
            self.bytes_client_to_server += sent
        else:
            self.bytes_server_to_client += sent

    def _release_due(self) -> None:
        """Move delayed chunks whose time has come to the output buffers."""
        now = time.monotonic()
        for link in list(self._links):
            due = [s for s in (link.client, link.server) if s.later and s.later[0][0] <= now]
            for side in due:
                while side.later and side.later[0][0] <= now:
                    _due, data = side.later.popleft()
                    side.later_bytes -= len(data)
                    side.out += data
            if due:
                self._settle(link)

    def _settle(self, link: _Link) -> None:
        """Pass on half-closes once flushed, close finished links, update interest."""
        if not link.blackholed:
            for side in (link.client, link.server):
                other = link.other(side)
                if other.eof and not side.wr_shut and not side.pending and side.sock is not None:
                    side.wr_shut = True
                    with contextlib.suppress(OSError):
                        side.sock.shutdown(socket.SHUT_WR)
            if all(s.eof and s.wr_shut for s in (link.client, link.server)):
                self._drop(link, rst=False)
                return
        self._sync(link)

    def _sync(self, link: _Link) -> None:
        """Register each socket for exactly the events it needs now."""
        for side in (link.client, link.server):
            if side.sock is None:
                continue
            other = link.other(side)
            want = 0
            if link.connecting and side is link.server:
                want = _W
            else:
                if not side.eof and (link.blackholed or other.pending < _HIGH_WATER):
                    want |= _R
                if side.out:
                    want |= _W
            if want == side.mask:
                continue
            if side.mask == 0:
                self._sel.register(side.sock, want, (link, side))
            elif want == 0:
                self._sel.unregister(side.sock)
            else:
                self._sel.modify(side.sock, want, (link, side))
            side.mask = want

    def _silence(self, link: _Link) -> None:
        """Make ``link`` a blackhole: drop what is queued, never write again."""
        link.blackholed = True
        for side in (link.client, link.server):
            self.bytes_dropped += side.pending
            side.out.clear()
            side.later.clear()
            side.later_bytes = 0
        if link.connecting:
            self._forget(link, link.server)  # the target never saw a byte
            link.connecting = False
        if link in self._links:
            self._sync(link)

    def _close_side(self, side: _Side, rst: bool = False) -> None:
        if side.sock is not None:
            if side.mask:
                self._sel.unregister(side.sock)
                side.mask = 0
            _close(side.sock, rst)
            side.sock = None

    def _forget(self, link: _Link, side: _Side) -> None:
        """Close one socket of a blackholed link; drop the link when both are gone."""
        self._close_side(side)
        if link.client.sock is None and link.server.sock is None:
            self._links.discard(link)

    def _drop(self, link: _Link, rst: bool) -> None:
        """Close both sockets of ``link`` (FIN, or RST when ``rst``)."""
        self._links.discard(link)
        self._close_side(link.client, rst)
        self._close_side(link.server, rst)
