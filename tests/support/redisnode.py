"""Extra, private Redis servers that reliability tests may start, kill and restart.

The machine's Redis on 6379 is never touched: each :class:`RedisNode` runs a
``redis-server`` of its own on a loopback port, with its own temporary
directory and no persistence::

    node = RedisNode()                        # claims a free port in 6380-6399
    node.start()                              # a few ms: until it answers PING
    redis.Redis.from_url(node.url(db=0))      # or broker.Connection(node.url())
    node.kill()                               # SIGKILL: the port refuses at once
    node.restart()                            # same port; the data is gone (no persistence)
    node.close()                              # no process left, directory removed

``with RedisNode() as node:`` starts the node and closes it at the end.
Ports lie outside the ephemeral range, so that :meth:`RedisNode.restart` can
bind the same port again; pytest processes running side by side claim them
with lock files plus a bind probe. ``close()`` runs at interpreter exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.support.net import claim_port
from tests.support.rabbitnode import pid_alive, process_tree, wait_gone
from tests.support.services import skip_or_fail

__all__ = [
    "REDIS_PORTS",
    "RedisNode",
    "install_problem",
    "redis_ping",
    "require_redis_nodes",
    "resp_ping",
]

#: Ports nodes are picked from: next to the system Redis, outside the ephemeral range.
REDIS_PORTS = range(6380, 6400)
LOCK_DIR = Path(tempfile.gettempdir()) / "brokerpool-redisnode"
_PING = b"*1\r\n$4\r\nPING\r\n"


def install_problem() -> str | None:
    """Why extra Redis nodes cannot start on this machine, or None when they can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (not on PATH)"
    return None


def require_redis_nodes() -> None:
    """Skip (or fail under ``CI=true``) when extra Redis nodes cannot start here."""
    problem = install_problem()
    if problem is not None:
        skip_or_fail(f"extra Redis nodes cannot start: {problem}")


def resp_ping(host: str, port: int, timeout: float = 1.0) -> bytes | None:
    """Send a raw RESP ``PING`` to ``host:port``; its reply line, or None if nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PING)
            reply = b""
            while not reply.endswith(b"\r\n") and len(reply) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:  # refused, reset, or timed out
        return None
    return reply or None


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` answers a raw RESP ``PING`` with ``+PONG``."""
    return resp_ping(host, port, timeout) == b"+PONG\r\n"


class RedisNode:
    """One private ``redis-server`` on 127.0.0.1 with its own directory.

    Args:
        port: Port to listen on; None claims a free one from :data:`REDIS_PORTS`.
        extra_args: More ``redis-server`` options, e.g. ``("--requirepass", "s3cr3t")``.
        config: Contents of a config file, written to ``base_dir/redis.conf``
            and loaded before the options (a Sentinel needs a file it can rewrite).
        start_timeout: Seconds :meth:`start` waits for ``+PONG``.

    Attributes:
        port: The port on 127.0.0.1; it stays the same across restarts.
        host: ``"127.0.0.1"``.
        base_dir: Temporary working directory; the server logs to ``redis.log``
            there (``redis.out`` has what it printed before opening the log).
        started_pids: Pid of every server this node started, oldest first.
        config_file: ``base_dir/redis.conf`` when ``config`` was given, else None.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        problem = install_problem()
        if problem is not None:
            raise RuntimeError(problem)
        self.port, self._port_lock = claim_port(LOCK_DIR, "redis", [port] if port else REDIS_PORTS)
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.started_pids: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._lock = threading.RLock()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"bp-redis{self.port}-"))
        self.log_file = self.base_dir / "redis.log"
        self.config_file: Path | None = None
        if config is not None:
            self.config_file = self.base_dir / "redis.conf"
            self.config_file.write_text(config)
        _LIVE.add(self)

    # -- state ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Pid of the running server, or None when it is down."""
        with self._lock:  # poll() reaps an exited server: never while kill() signals its pid
            proc = self._proc
            return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        """Whether the server process lives (it may still be starting)."""
        return self.pid is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran; a closed node cannot start again."""
        return self._closed

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:PORT/DB``."""
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the server answers a raw ``PING`` with ``+PONG`` now.

        A server started with ``--requirepass`` answers ``-NOAUTH`` instead
        (see :func:`resp_ping`), so this is False for it.
        """
        return redis_ping(self.host, self.port, timeout)

    def pids(self) -> set[int]:
        """Live pids of the node: the server and any child it forked."""
        pid = self.pid
        return {p for p in process_tree(pid) if pid_alive(p)} if pid is not None else set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.is_running else "down")
        return f"<RedisNode {self.host}:{self.port} {state} pid={self.pid}>"

    # -- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the server unless it runs, and wait until it answers ``PING``.

        Ready means ``+PONG`` (or ``-NOAUTH`` when ``extra_args`` set a password).

        Raises:
            RuntimeError: The node is closed, or the server exited while
                starting (its output is quoted), e.g. because the port is taken.
            TimeoutError: No ``+PONG`` within ``start_timeout`` seconds.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self.is_running:
                return
            self._launch()
            self._wait_until_ready()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM); SIGKILL whatever is left after ``timeout`` s."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and its children and reap it: the port refuses at once."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            children = process_tree(proc.pid) - {proc.pid}
            if proc.returncode is None:  # not reaped: its pid and process group are still ours
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for pid in children:  # forked children that left the group, if any
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10.0)
            for pid in children:
                wait_gone(pid, 5.0)

    def restart(self, graceful: bool = True) -> None:
        """Stop (or kill) the server if it runs, then start it again on the same port."""
        with self._lock:
            self.stop() if graceful else self.kill()
            self.start()

    def close(self) -> None:
        """Stop the server, release the port and delete the directory (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.stop()
            finally:
                os.close(self._port_lock)
                shutil.rmtree(self.base_dir, ignore_errors=True)
                _LIVE.discard(self)

    def __enter__(self) -> RedisNode:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------

    def _command(self) -> list[str]:
        return [
            "redis-server",
            *([] if self.config_file is None else [str(self.config_file)]),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.base_dir),
            "--logfile", str(self.log_file),
            *self.extra_args,
        ]  # fmt: skip

    def _launch(self) -> None:
        with open(self.base_dir / "redis.out", "ab") as out:
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_pids.append(self._proc.pid)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if not self.is_running:
                self.kill()  # reap it
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"redis-server on port {self.port} not ready:\n{self._log_tail()}"
                )
            time.sleep(0.005)

    def _answers(self) -> bool:
        """Ready: ``+PONG``, or ``-NOAUTH`` from a server with ``--requirepass``."""
        reply = resp_ping(self.host, self.port, timeout=0.5)
        return reply is not None and (reply == b"+PONG\r\n" or reply.startswith(b"-NOAUTH"))

    def _log_tail(self, lines: int = 30) -> str:
        tail = []
        for path in (self.base_dir / "redis.out", self.log_file):
            with contextlib.suppress(OSError):
                tail += [f"--- {path.name}", *path.read_text().splitlines()[-lines:]]
        return "\n".join(tail)


_LIVE: set[RedisNode] = set()


@atexit.register
def _close_all() -> None:
    """Last resort: no node outlives the interpreter that started it."""
    for node in list(_LIVE):
        with contextlib.suppress(Exception):
            node.close()
