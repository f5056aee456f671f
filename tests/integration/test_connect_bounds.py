"""``connect_timeout`` bounds a whole connect attempt, on redis:// as on amqp://.

A connect attempt is the TCP connect, the TLS handshake and everything said
before the connection is usable (AMQP's handshake; Redis' AUTH, CLIENT
SETNAME, SELECT, the script load and the lease). A server that accepts and
never answers (``SilentServer``) used to cost a Redis connect ``socket_timeout``
(10 s) per attempt whatever ``connect_timeout`` said.

The time limits asserted here are hang guards, far above what a bounded
attempt takes and far below what an unbounded one did.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from broker import Connection
from broker.errors import OperationalError, RecoverableConnectionError
from tests.support.net import SilentServer
from tests.support.services import REDIS_DB
from transports.base import ConnectionParams
from transports.redis.transport import Transport as RedisTransport

#: Two attempts at connect_timeout=1 plus the default 0.5 s pause: about 2.5 s.
TWO_ATTEMPTS_AT_MOST = 3.5


class SlowRedis:
    """Answers every request ``+OK``, each after ``delay`` seconds: a server that is barely alive.

    Enough for redis-py's handshake (AUTH, CLIENT SETNAME, SELECT) and the
    script call, which take ``+OK`` for an answer.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._answer, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            client.settimeout(0.05)
            while not self._stop.is_set():
                try:
                    request = client.recv(65536)
                except TimeoutError:
                    continue
                if not request:
                    return
                if self._stop.wait(self.delay):
                    return
                client.sendall(b"+OK\r\n")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self._listener.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def _two_attempts(url: str) -> tuple[OperationalError, float]:
    conn = Connection(url, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(OperationalError) as info:
        conn.ensure_connection(max_retries=1)
    return info.value, time.monotonic() - started


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:{port}/0",
        "redis://:pw@127.0.0.1:{port}/3",  # AUTH and SELECT before anything else
        "rediss://127.0.0.1:{port}/0",  # the TLS handshake is never answered
        "amqp://guest:guest@127.0.0.1:{port}//",  # as it always was on amqp://
    ],
    ids=["redis", "redis-auth-select", "rediss", "amqp"],
)
def test_two_attempts_on_a_silent_server_end_within_two_connect_timeouts(
    silent: SilentServer, url: str
) -> None:
    error, elapsed = _two_attempts(url.format(port=silent.port))
    assert elapsed < TWO_ATTEMPTS_AT_MOST
    assert "after 2 attempts" in str(error)
    assert isinstance(error.__cause__, RecoverableConnectionError)
    assert silent.accepted == 2


def test_a_redis_connect_timeout_says_what_it_covered(silent: SilentServer) -> None:
    params = ConnectionParams(hostname="127.0.0.1", port=silent.port, connect_timeout=0.5)
    with pytest.raises(RecoverableConnectionError) as info:
        RedisTransport().connect(params)
    message = str(info.value)
    where = f"redis 127.0.0.1:{silent.port}/0"
    assert f"could not connect to {where} within connect_timeout=0.5 s" in message
    assert "(TCP connect, TLS, login and setup together)" in message


def test_each_redis_reply_gets_only_what_is_left_of_the_connect_timeout() -> None:
    """AUTH, SETNAME, SELECT and the script each answered after 0.6 s: 2.4 s in all.

    With ``connect_timeout=1`` each reply alone would be in time; the attempt
    as a whole is not, so it fails at about 1 s instead of succeeding at 2.4 s.
    """
    server = SlowRedis(delay=0.6)
    try:
        params = ConnectionParams(
            hostname="127.0.0.1",
            port=server.port,
            password="pw",
            virtual_host="3",
            connect_timeout=1,
        )
        started = time.monotonic()
        with pytest.raises(RecoverableConnectionError, match="within connect_timeout=1 s"):
            RedisTransport().connect(params)
        assert time.monotonic() - started < 5  # a hang guard; unbounded, it would have connected
    finally:
        server.close()


@pytest.mark.redis
def test_failover_past_a_silent_redis_takes_one_connect_timeout(
    silent: SilentServer, redis_url: str
) -> None:
    conn = Connection([f"redis://127.0.0.1:{silent.port}/0", redis_url], connect_timeout=1)
    started = time.monotonic()
    try:
        conn.ensure_connection()
        assert time.monotonic() - started < 5  # one connect_timeout, not socket_timeout (10 s)
        assert conn.as_uri() == f"redis://127.0.0.1:6379/{REDIS_DB}"
    finally:
        conn.close()


@pytest.mark.redis
def test_rediss_to_the_plain_redis_port_ends_within_the_connect_timeout(redis_url: str) -> None:
    # Redis reads a TLS hello as the start of an inline command and waits for its
    # end forever: only connect_timeout ends the attempt (a recoverable timeout).
    error, elapsed = _two_attempts(redis_url.replace("redis://", "rediss://"))
    assert elapsed < TWO_ATTEMPTS_AT_MOST
    assert isinstance(error.__cause__, RecoverableConnectionError)
    assert "within connect_timeout=1 s" in str(error.__cause__)


def test_cli_check_on_a_silent_redis_gives_up_within_its_timeout(silent: SilentServer) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "broker", "check", "--timeout", "1",
         f"redis://127.0.0.1:{silent.port}/0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "could not connect to redis://127.0.0.1:" in done.stderr
    assert elapsed < 5  # interpreter start-up plus about 1 s; it took 10 s before
