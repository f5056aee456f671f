"""Tiny loopback TCP peers for connect-path tests: free ports, slammed doors, silent peers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["ClosingServer", "SilentServer", "bindable", "claim_port", "free_port"]


def free_port() -> int:
    """A loopback port nothing listens on (bound once by us, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bindable(port: int) -> bool:
    """Whether nothing holds 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe, contextlib.suppress(OSError):
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        probe.bind(("127.0.0.1", port))
        return True
    return False


def claim_port(
    lock_dir: Path, kind: str, candidates: Iterable[int], also: Iterable[int] = ()
) -> tuple[int, int]:
    """Lock and return ``(port, lock_fd)`` for the first free candidate.

    A candidate is free when no other process holds its lock file
    ``lock_dir/KIND-PORT.lock`` and nothing is bound to it, nor to ``port +
    offset`` for each offset in ``also``. The lock is held until the caller
    closes ``lock_fd``, so parallel test runs never share a port.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    offsets = [0, *also]
    tried = list(candidates)
    for port in tried:
        fd = os.open(lock_dir / f"{kind}-{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        with contextlib.suppress(OSError):  # OSError: another process's node has it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if all(bindable(port + offset) for offset in offsets):
                return port, fd
        os.close(fd)
    raise RuntimeError(f"no free port for an extra {kind} node among {tried}")


class _Server:
    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _run(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self._handle(client)

    def _handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        for s in self._held:
            s.close()

    def __enter__(self) -> _Server:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ClosingServer(_Server):
    """Accepts every connection and closes it at once; counts the attempts."""

    def _handle(self, client: socket.socket) -> None:
        client.close()


class SilentServer(_Server):
    """Accepts every connection and never says a word (a hung broker)."""

    def _handle(self, client: socket.socket) -> None:
        self._held.append(client)
