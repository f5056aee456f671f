"""Extra RabbitMQ nodes that reliability tests may start, kill, restart and block.

The machine's RabbitMQ on 5672 is never touched: these private nodes are set
up as docs/architecture.rst ("How it is tested") describes (the real server script, own node name,
ports, data, logs, config, ``HOME`` and cookie, a private epmd on 4370)::

    node = RabbitNode()              # claims a free AMQP port in 5673-5679
    node.start()                     # 5-8 s: until an AMQP handshake works
    amqp.Connection(host=node.host)  # or broker.Connection(node.url)
    node.kill()                      # SIGKILL: the port refuses at once
    node.restart()                   # same data dir: durable queues survive
    node.set_memory_alarm(True)      # publishers get connection.blocked
    node.close()                     # every process stopped, data removed

Pytest processes running side by side claim ports with lock files plus a bind
probe and share epmd through :class:`EpmdDaemon`; ``close()`` runs at exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import amqp

from tests.support.net import bindable, claim_port
from tests.support.services import skip_or_fail

SERVER_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"
EPMD_PORT = 4370
#: AMQP ports nodes are picked from; the distribution port is AMQP + 20000.
AMQP_PORTS = range(5673, 5680)
DIST_PORT_OFFSET = 20000
LOCK_DIR = Path(tempfile.gettempdir()) / "brokerpool-rabbitnode"
#: Each node's own files and directories, under ``base_dir``, by RABBITMQ_* variable.
_FILES = {
    "MNESIA_BASE": "mnesia",
    "LOG_BASE": "log",
    "PID_FILE": "rabbit.pid",
    "CONF_ENV_FILE": "rabbitmq-env.conf",  # empty
    "CONFIG_FILE": "rabbitmq.conf",
    "CONFIG_FILES": "conf.d",  # empty
    "ADVANCED_CONFIG_FILE": "advanced.config",
    "ENABLED_PLUGINS_FILE": "enabled_plugins",  # "[]."
}
_DEFAULT_CONFIG = (
    "# Written by tests/support/rabbitnode.py for a throw-away test node.",
    "loopback_users.guest = true",
    "log.console = false",
    "log.file.level = info",
)


def find_server_script() -> Path | None:
    """The real ``rabbitmq-server`` script of the newest installed version, if any."""
    found = sorted(glob.glob(SERVER_GLOB))
    return Path(found[-1]) if found else None


def install_problem() -> str | None:
    """Why extra nodes cannot start on this machine, or None when they can."""
    if find_server_script() is None:
        return f"RabbitMQ server is not installed (no {SERVER_GLOB})"
    if shutil.which("epmd") is None:
        return "Erlang's epmd is not on PATH"
    return None


def require_extra_nodes() -> None:
    """Skip (or fail under ``CI=true``) when extra RabbitMQ nodes cannot start here."""
    problem = install_problem()
    if problem is not None:
        skip_or_fail(f"extra RabbitMQ nodes cannot start: {problem}")


def _stat(pid: int | str) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name: state [0], ppid [1], ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """Like ``kill -0``, except that a zombie (exited, not reaped) counts as gone."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` has exited; False if it still runs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


def process_tree(*roots: int) -> set[int]:
    """``roots`` and their descendants, by parent pid: erl_child_setup and
    inet_gethost call setsid, so neither session nor process group finds them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(roots), list(roots)
    while todo:
        kids = [kid for kid in children.get(todo.pop(), []) if kid not in found]
        found.update(kids)
        todo += kids
    return found


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _detached(*args: str) -> subprocess.Popen[bytes]:
    """Start ``args`` in a session of its own with no stdio."""
    null = subprocess.DEVNULL
    return subprocess.Popen(args, stdin=null, stdout=null, stderr=null, start_new_session=True)


# See EpmdDaemon; the pid is checked to be that epmd still (pids are reused).
_EPMD_REAPER = """
import fcntl, os, signal, sys
lock, pid, port = sys.argv[1:]
fcntl.flock(os.open(lock, os.O_RDWR), fcntl.LOCK_EX)
with open(f"/proc/{pid}/cmdline", "rb") as cmdline:  # raises if it is gone already
    if cmdline.read().split(b"\\0")[:3] == [b"epmd", b"-port", port.encode()]:
        os.kill(int(pid), signal.SIGTERM)
"""


class EpmdDaemon:
    """A private ``epmd -port PORT -address 127.0.0.1``, shared by reference count.

    :meth:`acquire` starts epmd in the foreground (this process owns its pid)
    unless something listens on the port already (that one is used, never
    stopped). Users hold a shared ``flock`` on ``LOCK_DIR/epmd-PORT.lock``. On
    the last :meth:`release` here, an epmd this process started is stopped at
    once if no other process holds the lock, else by a small reaper process
    that waits for the exclusive lock: none is left behind.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock_path = LOCK_DIR / f"epmd-{port}.lock"
        self._users = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()

    @property
    def pid(self) -> int | None:
        """Pid of the epmd this process started and still runs, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def __repr__(self) -> str:
        return f"<EpmdDaemon port={self.port} users={self._users} owned_pid={self.pid}>"

    def acquire(self) -> None:
        """Make sure epmd listens on 127.0.0.1:port and count one more user."""
        with self._mutex:
            if self._users == 0:
                LOCK_DIR.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
                fcntl.flock(fd, fcntl.LOCK_SH)  # waits while a last user stops epmd
                self._lock_fd = fd
                if self.pid is None and bindable(self.port):
                    self._spawn()
            self._users += 1

    def release(self) -> None:
        """Count one user fewer; see the class docstring for when epmd stops."""
        with self._mutex:
            self._users -= 1
            if self._users > 0 or self._lock_fd is None:
                return
            fd, self._lock_fd = self._lock_fd, None
            proc = self._proc
            if proc is not None and proc.poll() is None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # other processes' nodes still use it: hand over
                    self._start_reaper(proc.pid)
                else:
                    proc.terminate()
                    proc.wait(5.0)
            os.close(fd)

    def _spawn(self) -> None:
        proc = _detached("epmd", "-port", str(self.port), "-address", "127.0.0.1")
        deadline = time.monotonic() + 10.0
        while proc.poll() is None and bindable(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            self._proc = proc
        elif bindable(self.port):  # else: lost a start race; use the winner's
            raise RuntimeError(f"epmd on 127.0.0.1:{self.port} did not start")

    def _start_reaper(self, pid: int) -> None:
        _detached(sys.executable, "-c", _EPMD_REAPER, str(self.lock_path), str(pid), str(self.port))


@functools.cache
def epmd_daemon(port: int = EPMD_PORT) -> EpmdDaemon:
    """The process-wide :class:`EpmdDaemon` for ``port``."""
    return EpmdDaemon(port)


class RabbitNode:
    """One private RabbitMQ node on 127.0.0.1 with its own data directory.

    Args:
        port: AMQP port; None claims a free one from :data:`AMQP_PORTS`.
        config_lines: Extra ``rabbitmq.conf`` lines (for example TLS
            ``listeners.ssl.default = 5691`` and ``ssl_options.*``).
        advanced_config: Contents of ``advanced.config`` (Erlang terms).
        epmd_port: Port of the private epmd the node registers with.
        cookie: Erlang cookie; nodes that form a cluster need the same one.
            None gives the node a random cookie of its own.
        start_timeout: Seconds :meth:`start` waits for an AMQP handshake.

    Attributes:
        port: The AMQP port on 127.0.0.1; ``dist_port`` is port + 20000.
        nodename: ``rabbitPORT@<short hostname>``, for ``rabbitmqctl -n``.
        host: ``"127.0.0.1:PORT"``, the form py-amqp's ``host=`` takes.
        url: ``amqp://guest:guest@127.0.0.1:PORT//`` (guest works from loopback).
        base_dir: Temporary directory with the node's data, logs, config and
            ``pid_file`` (where the beam writes its pid).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        config_lines: Sequence[str] = (),
        advanced_config: str = "[].",
        epmd_port: int = EPMD_PORT,
        cookie: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        script = find_server_script()
        if script is None:
            raise RuntimeError(install_problem())
        self._script = script
        self.port, self._port_lock = claim_port(
            LOCK_DIR, "amqp", [port] if port else AMQP_PORTS, also=(DIST_PORT_OFFSET,)
        )
        self.dist_port = self.port + DIST_PORT_OFFSET
        self.nodename = f"rabbit{self.port}@{socket.gethostname().split('.')[0]}"
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.start_timeout = start_timeout
        self._epmd = epmd_daemon(epmd_port)
        self._proc: subprocess.Popen[bytes] | None = None  # the launcher script
        self._beam: int | None = None
        self._alarm = False
        self._closed = False
        self._lock = threading.RLock()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"bp-rabbit{self.port}-"))
        self.pid_file = self.base_dir / "rabbit.pid"
        self._cookie = cookie or f"BPTEST{os.urandom(12).hex().upper()}"
        self._write_files(config_lines, advanced_config)
        self._env = self._make_env()
        # Before any beam: otherwise erl would spawn an `epmd -daemon` nobody owns.
        self._epmd.acquire()
        _LIVE.add(self)

    @property
    def beam_pid(self) -> int | None:
        """Pid of the running beam, or None when the node is down."""
        pid = self._read_pid_file() or self._beam
        return pid if pid is not None and pid_alive(pid) else None

    @property
    def is_running(self) -> bool:
        """Whether the node is up or booting (its launcher or beam lives)."""
        proc = self._proc
        return (proc is not None and proc.poll() is None) or self.beam_pid is not None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.is_running else "down")
        return f"<RabbitNode {self.nodename} port={self.port} {state} pid={self.beam_pid}>"

    def start(self, wait: bool = True) -> None:
        """Start the node unless it runs (``kill -0``); by default wait until ready.

        Raises:
            RuntimeError: The node exited during boot (the log tail is quoted).
            TimeoutError: No AMQP handshake within ``start_timeout`` seconds.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if not self.is_running:  # starting a running node deletes its pid file
                self._launch()
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until the AMQP port completes a handshake (see :meth:`start`)."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while not self._handshake():
            if not self.is_running:
                raise RuntimeError(f"{self.nodename} is not running:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"{self.nodename} not ready on {self.host}:\n{self._log_tail()}")
            time.sleep(0.2)
        self._beam = self._read_pid_file()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM to the beam); SIGKILL after ``timeout`` s."""
        with self._lock:
            pid = self.beam_pid  # before SIGTERM: a graceful stop deletes the pid file
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                wait_gone(pid, timeout)
            self.kill()  # the launcher and helpers, and the beam after a timeout

    def kill(self) -> None:
        """SIGKILL the beam and every process under it; the port refuses at once."""
        with self._lock:
            proc, beam = self._proc, self.beam_pid
            tree = self._tree()  # before the dying beam's helpers are reparented
            if beam is not None:
                _sigkill(beam)
            if proc is not None and beam is not None:  # reaps it once all threads are gone
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10.0)
            for pid in tree:  # erl_child_setup, inet_gethost, a beam still booting
                _sigkill(pid)
            for pid in tree:
                wait_gone(pid, 5.0)
            if proc is not None:
                proc.wait(5.0)
            self._proc = self._beam = None
            self.pid_file.unlink(missing_ok=True)  # stale: its pid may be reused

    def restart(self, graceful: bool = True) -> None:
        """Stop (or kill) the node if it runs, then start it on the same data."""
        self.stop() if graceful else self.kill()
        self.start()

    def close(self) -> None:
        """Kill every process of the node, release epmd and delete its data."""
        with self._lock:
            if self._closed:
                return
            self.kill()  # the data is deleted: a graceful stop would only cost time
            self._closed = True
            self._epmd.release()
            os.close(self._port_lock)
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _LIVE.discard(self)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE *args``; return stdout, raise RuntimeError on failure."""
        done = subprocess.run(
            [str(self._script.with_name("rabbitmqctl")), "-n", self.nodename, *args],
            env=self._env,
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
        if done.returncode != 0:
            command = f"rabbitmqctl -n {self.nodename} {' '.join(args)}"
            raise RuntimeError(f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def sync_metadata(self) -> None:
        """Force the node's metadata (queues, exchanges, bindings) onto disk now.

        RabbitMQ 3.x keeps declarations in Mnesia, whose transaction log is
        what a restart replays; this syncs that log (``mnesia:sync_log()``),
        so that a ``kill -9`` right after a declare cannot depend on when
        the broker would have synced it. Messages need no such step: a
        publisher confirm of a persistent message to a durable queue is sent
        once the message is on disk.
        """
        self.ctl("eval", "ok = mnesia:sync_log().")

    def set_memory_alarm(self, active: bool) -> None:
        """Raise (watermark 0) or clear (0.4) the alarm that blocks publishers."""
        self.ctl("set_vm_memory_high_watermark", "0" if active else "0.4")
        self._alarm = active

    def reset(self) -> None:
        """Make the node clean for the next test: started, no memory alarm."""
        self.start()
        if self._alarm:
            self.set_memory_alarm(False)

    def pids(self) -> set[int]:
        """Live pids of the node: launcher, beam and everything they started."""
        return {pid for pid in self._tree() if pid_alive(pid)}

    def _tree(self) -> set[int]:
        roots = (self._proc.pid if self._proc else None, self.beam_pid)
        return process_tree(*(pid for pid in roots if pid is not None))

    def _write_files(self, config_lines: Sequence[str], advanced_config: str) -> None:
        base = self.base_dir
        for sub in ("home", "mnesia", "log", "conf.d"):
            (base / sub).mkdir()
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(self._cookie)
        cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (base / "rabbitmq.conf").write_text("\n".join([*_DEFAULT_CONFIG, *config_lines]) + "\n")
        (base / "advanced.config").write_text(advanced_config + "\n")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")

    def _make_env(self) -> dict[str, str]:
        base = self.base_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.setdefault("LANG", "C.UTF-8")
        env.update(
            HOME=str(base / "home"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_CRASH_DUMP=str(base / "erl_crash.dump"),
            ERL_EPMD_PORT=str(self._epmd.port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        env.update({f"RABBITMQ_{var}": str(base / name) for var, name in _FILES.items()})
        return env

    def _launch(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self._beam = None
        self._alarm = False  # a fresh boot has the configured watermark again
        with open(self.base_dir / "log" / "launcher.out", "ab") as out:
            self._proc = subprocess.Popen(
                [str(self._script)],
                env=self._env,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _read_pid_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _handshake(self) -> bool:
        conn = amqp.Connection(host=self.host, userid="guest", password="guest", connect_timeout=2)
        try:
            conn.connect()
        except Exception:  # not up yet: refused, reset, or the broker still booting
            return False
        with contextlib.suppress(Exception):
            conn.close()
        return True

    def _log_tail(self, lines: int = 30) -> str:
        tail = []
        for name in ("launcher.out", f"{self.nodename}.log"):
            with contextlib.suppress(OSError):
                tail += [
                    f"--- {name}",
                    *(self.base_dir / "log" / name).read_text().splitlines()[-lines:],
                ]
        return "\n".join(tail)


_LIVE: set[RabbitNode] = set()


@atexit.register
def _close_all() -> None:
    """Last resort: no node outlives the interpreter that started it."""
    for node in list(_LIVE):
        with contextlib.suppress(Exception):
            node.close()
