"""Extra RabbitMQ nodes that reliability tests may start, kill, restart and block.

The machine's own RabbitMQ on 127.0.0.1:5672 must never be stopped or
reconfigured, so tests that need a broker to die start a private node, set
up exactly as /work/shared/TESTING.md prescribes: the real server script
(never the ``/usr/sbin`` wrapper), a private node name, ports, data, log and
config directories, a private ``HOME`` and Erlang cookie, and a private epmd
on 127.0.0.1:4370.

Usage::

    node = RabbitNode()              # picks a free AMQP port in 5673-5679
    node.start()                     # 5-8 s; blocks until an AMQP handshake works
    amqp.Connection(host=node.host)  # or broker.Connection(node.url)
    node.kill()                      # SIGKILL: the port refuses at once
    node.restart()                   # same data dir: durable queues survive
    node.set_memory_alarm(True)      # publishers get connection.blocked
    node.close()                     # every process stopped, data removed

``RabbitNode(port=None, *, config_lines=(), advanced_config="[].",
epmd_port=4370, start_timeout=60.0)``; operations ``start(wait=True)``,
``wait_until_ready(timeout=None)``, ``stop(timeout=30.0)``, ``kill()``,
``restart(graceful=True)``, ``ctl(*args)``, ``set_memory_alarm(active)``,
``reset()``, ``pids()``, ``close()``; properties ``port``, ``dist_port``,
``nodename``, ``host``, ``url``, ``beam_pid``, ``is_running``.

Several pytest processes may share the machine: AMQP ports are claimed with
a lock file under ``/tmp/brokerpool-rabbitnode`` as well as a bind probe, the
node name is derived from the port (``rabbit5673@<host>``), and the epmd is
shared through :class:`EpmdDaemon`. Every process a node starts lives in its
own session; :meth:`RabbitNode.close` (also run at interpreter exit) kills
what is left of that session by pid and removes the data directory.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import amqp

__all__ = [
    "AMQP_PORTS",
    "EPMD_PORT",
    "EpmdDaemon",
    "RabbitNode",
    "find_server_script",
    "install_problem",
]

SERVER_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"
EPMD_PORT = 4370
#: AMQP ports nodes are picked from; the distribution port is AMQP + 20000.
AMQP_PORTS = range(5673, 5680)
DIST_PORT_OFFSET = 20000
LOCK_DIR = Path(tempfile.gettempdir()) / "brokerpool-rabbitnode"
#: Restores the default memory watermark after :meth:`RabbitNode.set_memory_alarm`.
DEFAULT_MEMORY_WATERMARK = "0.4"

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


# -- processes (by pid only: nothing is ever killed by name) --------------------


def pid_alive(pid: int) -> bool:
    """``kill -0`` that also counts a zombie (exited, not yet reaped) as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` has exited; False if it still runs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def session_pids(sid: int) -> set[int]:
    """Live pids whose session id is ``sid`` (read from ``/proc/*/stat``)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.add(int(entry))
    return found


def kill_session(sid: int) -> None:
    """SIGKILL, pid by pid, every process left in session ``sid``."""
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in session_pids(sid):
        wait_gone(pid, 5.0)


# -- the private epmd ---------------------------------------------------------------


class EpmdDaemon:
    """A private ``epmd -port PORT -address 127.0.0.1``, shared by reference count.

    :meth:`acquire` starts epmd in the foreground (so this process owns its
    pid) unless something already listens on the port, in which case that
    epmd is used and never stopped from here. Every process using it holds a
    shared ``flock`` on ``LOCK_DIR/epmd-PORT.lock``; when the last user in
    this process calls :meth:`release`, an epmd this process started is
    stopped only if no other process holds that lock. Otherwise it is left
    running for the other users (later runs reuse it).
    """

    def __init__(self, port: int) -> None:
        self.port = port
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
                fd = os.open(LOCK_DIR / f"epmd-{self.port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
                fcntl.flock(fd, fcntl.LOCK_SH)  # an owner stopping epmd holds LOCK_EX briefly
                self._lock_fd = fd
                if self.pid is None and not _listening(self.port):
                    self._spawn()
            self._users += 1

    def release(self) -> None:
        """Count one user fewer; the last one stops an unshared epmd it started."""
        with self._mutex:
            self._users -= 1
            if self._users > 0 or self._lock_fd is None:
                return
            fd, self._lock_fd = self._lock_fd, None
            proc = self._proc
            try:
                if proc is not None and proc.poll() is None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:  # another process's nodes still use it
                        return
                    proc.terminate()
                    try:
                        proc.wait(5.0)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5.0)
                    self._proc = None
            finally:
                os.close(fd)

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            ["epmd", "-port", str(self.port), "-address", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10.0
        while not _listening(self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            self._proc = proc
            return
        # Lost a race with another process's epmd: use that one if it listens.
        if not _listening(self.port):
            raise RuntimeError(f"epmd on 127.0.0.1:{self.port} did not start")


_EPMDS: dict[int, EpmdDaemon] = {}
_EPMDS_LOCK = threading.Lock()


def epmd_daemon(port: int = 4370) -> EpmdDaemon:
    """The process-wide :class:`EpmdDaemon` for ``port``."""
    with _EPMDS_LOCK:
        return _EPMDS.setdefault(port, EpmdDaemon(port))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def _bindable(port: int) -> bool:
    """Whether nothing listens on (or holds) 127.0.0.1:port right now."""
    with socket.socket() as probe:
        # SO_REUSEADDR, as the beam uses: TIME_WAIT leftovers must not count as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _claim_port(candidates: Iterable[int]) -> tuple[int, int]:
    """Lock and return ``(port, lock_fd)`` for the first free candidate port."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    tried = []
    for port in candidates:
        tried.append(port)
        fd = os.open(LOCK_DIR / f"amqp-{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process's node holds this port
            os.close(fd)
            continue
        if _bindable(port) and _bindable(port + DIST_PORT_OFFSET):
            return port, fd
        os.close(fd)
    raise RuntimeError(f"no free port for an extra RabbitMQ node among {tried}")


class RabbitNode:
    """One private RabbitMQ node on 127.0.0.1 with its own data directory.

    Args:
        port: AMQP port; None picks a free one from :data:`AMQP_PORTS`.
        config_lines: Extra ``rabbitmq.conf`` lines (for example TLS
            ``listeners.ssl.default`` and ``ssl_options.*``).
        advanced_config: Contents of ``advanced.config`` (Erlang terms).
        epmd_port: Port of the private epmd the node registers with.
        start_timeout: Seconds :meth:`start` waits for an AMQP handshake.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        config_lines: Sequence[str] = (),
        advanced_config: str = "[].",
        epmd_port: int = EPMD_PORT,
        start_timeout: float = 60.0,
    ) -> None:
        script = find_server_script()
        if script is None:
            raise RuntimeError(install_problem())
        self._script = script
        self._ctl_script = script.with_name("rabbitmqctl")
        self._port, self._port_lock = _claim_port([port] if port else AMQP_PORTS)
        self.nodename = f"rabbit{self._port}@{_short_hostname()}"
        self.start_timeout = start_timeout
        self._epmd: EpmdDaemon = epmd_daemon(epmd_port)
        self._holds_epmd = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._beam: int | None = None
        self._alarm = False
        self._closed = False
        self._lock = threading.RLock()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"bp-rabbit{self._port}-"))
        self._write_files(config_lines, advanced_config)
        self._env = self._make_env()
        _LIVE.add(self)

    # -- identity -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The AMQP port on 127.0.0.1."""
        return self._port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port (AMQP port + 20000)."""
        return self._port + DIST_PORT_OFFSET

    @property
    def host(self) -> str:
        """``"127.0.0.1:PORT"``, the form py-amqp's ``host=`` takes."""
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT//`` (guest works from loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self._port}//"

    @property
    def pid_file(self) -> Path:
        """Where the beam writes its own pid."""
        return self.base_dir / "rabbit.pid"

    @property
    def log_file(self) -> Path:
        """The node's main log (useful in failure messages)."""
        return self.base_dir / "log" / f"{self.nodename}.log"

    @property
    def beam_pid(self) -> int | None:
        """Pid of the running beam, or None when the node is down."""
        with self._lock:
            pid = self._read_pid_file() or self._beam
            return pid if pid is not None and pid_alive(pid) else None

    @property
    def is_running(self) -> bool:
        """Whether the node is up or booting (the beam or its launcher lives)."""
        with self._lock:
            launcher = self._proc is not None and self._proc.poll() is None
            return launcher or self.beam_pid is not None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.is_running else "down")
        return f"<RabbitNode {self.nodename} port={self._port} {state} pid={self.beam_pid}>"

    # -- lifecycle ------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Start the node unless it already runs; by default wait until ready.

        Starting a node that runs would make RabbitMQ delete its pid file,
        so a live beam (``kill -0``) makes this a no-op.

        Raises:
            RuntimeError: The node exited during boot (the log tail is quoted).
            TimeoutError: No AMQP handshake within ``start_timeout`` seconds.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if not self.is_running:
                self._launch()
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block until the AMQP port completes a handshake (see :meth:`start`)."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while True:
            proc = self._proc
            if proc is not None and proc.poll() is not None and self.beam_pid is None:
                raise RuntimeError(f"{self.nodename} exited during boot:\n{self._log_tail()}")
            if self._handshake():
                with self._lock:
                    self._beam = self._read_pid_file() or self._find_beam()
                return
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"{self.nodename} not ready on {self.host}:\n{self._log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM to the beam), SIGKILL after ``timeout`` s."""
        with self._lock:
            # A graceful stop deletes the pid file: read the pid before signalling.
            pid = self.beam_pid
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                if not wait_gone(pid, timeout):
                    os.kill(pid, signal.SIGKILL)
                    wait_gone(pid, 5.0)
            self._reap()

    def kill(self) -> None:
        """SIGKILL the beam; its port refuses connections at once."""
        with self._lock:
            pid = self.beam_pid or self._find_beam()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 5.0)
            self._reap()

    def restart(self, graceful: bool = True) -> None:
        """Stop (or kill) the node if it runs, then start it on the same data."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def close(self) -> None:
        """Kill every process of the node, release epmd and delete its data."""
        with self._lock:
            if self._closed:
                return
            self.kill()
            self._closed = True
            if self._holds_epmd:
                self._holds_epmd = False
                self._epmd.release()
            os.close(self._port_lock)
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- management -----------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE *args`` against this node; return its stdout.

        Raises:
            RuntimeError: rabbitmqctl exited non-zero (its output is quoted).
        """
        done = subprocess.run(
            [str(self._ctl_script), "-n", self.nodename, *args],
            env=self._env,
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {self.nodename} {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def set_memory_alarm(self, active: bool) -> None:
        """Raise (watermark 0) or clear (watermark 0.4) the memory alarm.

        While raised, a connection that publishes receives connection.blocked.
        """
        self.ctl("set_vm_memory_high_watermark", "0" if active else DEFAULT_MEMORY_WATERMARK)
        self._alarm = active

    def reset(self) -> None:
        """Bring the node back to a clean running state after a test.

        Starts it if a test killed or stopped it, and clears a memory alarm
        that :meth:`set_memory_alarm` raised.
        """
        self.start()
        if self._alarm:
            self.set_memory_alarm(False)

    def pids(self) -> set[int]:
        """Live pids of the launcher's session (launcher, beam and helpers)."""
        proc = self._proc
        found = session_pids(proc.pid) if proc is not None else set()
        beam = self.beam_pid
        return found | ({beam} if beam is not None else set())

    # -- internals ------------------------------------------------------------

    def _write_files(self, config_lines: Sequence[str], advanced_config: str) -> None:
        base = self.base_dir
        for sub in ("home", "mnesia", "log", "conf.d"):
            (base / sub).mkdir()
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(f"BPTEST{os.urandom(12).hex().upper()}")
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
            RABBITMQ_NODE_PORT=str(self._port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_CONFIG_FILES=str(base / "conf.d"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            ERL_CRASH_DUMP=str(base / "erl_crash.dump"),
            ERL_EPMD_PORT=str(self._epmd.port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _launch(self) -> None:
        if not self._holds_epmd:
            # Before the beam: otherwise erl would spawn an `epmd -daemon` nobody owns.
            self._epmd.acquire()
            self._holds_epmd = True
        self.pid_file.unlink(missing_ok=True)  # stale after a kill -9
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

    def _reap(self) -> None:
        """After the beam is gone: collect the launcher, kill session leftovers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
        kill_session(proc.pid)  # erl_child_setup, inet_gethost, ... by pid

    def _read_pid_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _find_beam(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        for pid in session_pids(proc.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().startswith("beam"):
                    return pid
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
        parts = []
        for path in (self.base_dir / "log" / "launcher.out", self.log_file):
            with contextlib.suppress(OSError):
                parts.append(
                    f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-lines:])
                )
        return "\n".join(parts) or "(no log output)"


_LIVE: set[RabbitNode] = set()


@atexit.register
def _close_all() -> None:
    """Last resort: no node outlives the interpreter that started it."""
    for node in list(_LIVE):
        with contextlib.suppress(Exception):
            node.close()
