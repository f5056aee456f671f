"""Self-tests of the reliability infrastructure: extra nodes, epmd and the fault proxy.

They use raw py-amqp so that they do not depend on the code under test, and
check that each fault looks to a client as docs/architecture.rst ("How it is tested")
describes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import amqp
import pytest
from amqp.exceptions import ConnectionForced, NotFound

from tests.support.faultproxy import FaultProxy
from tests.support.rabbitnode import EpmdDaemon, RabbitNode, pid_alive, wait_gone
from tests.support.services import RABBITMQ_PORT, skip_or_fail
from tests.support.wait import drain_until, wait_until

pytestmark = pytest.mark.extra_nodes

ProxyFactory = Callable[..., FaultProxy]


def connect(host: str, **kwargs: object) -> amqp.Connection:
    """An open py-amqp connection as guest; reads time out so a dead peer cannot hang close()."""
    kwargs.setdefault("read_timeout", 1)
    kwargs.setdefault("write_timeout", 1)
    conn = amqp.Connection(host=host, userid="guest", password="guest", connect_timeout=2, **kwargs)
    conn.connect()
    return conn


@contextlib.contextmanager
def connection(host: str, **kwargs: object) -> Iterator[amqp.Connection]:
    """Like :func:`connect`, closed afterwards even when the link is broken."""
    conn = connect(host, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        conn.collect()


def refuses(port: int) -> bool:
    """Whether a TCP connect to 127.0.0.1:port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def proxy(rabbitmq_url: str, fault_proxy: ProxyFactory) -> FaultProxy:
    """A proxy to the machine's RabbitMQ (only its own connections are broken)."""
    return fault_proxy(RABBITMQ_PORT)


# -- fault proxy ------------------------------------------------------------------


def test_proxy_forwards_an_amqp_round_trip(proxy: FaultProxy, unique_name: str) -> None:
    with connection(proxy.host) as conn:
        channel = conn.channel()
        channel.queue_declare(unique_name, exclusive=True)
        channel.basic_publish(amqp.Message(b"through the proxy"), routing_key=unique_name)
        assert channel.basic_get(unique_name, no_ack=True).body == b"through the proxy"
        assert proxy.active_connections == 1
    assert proxy.connections_accepted == 1
    assert proxy.bytes_client_to_server > len(b"through the proxy")
    assert proxy.bytes_server_to_client > len(b"through the proxy")
    assert proxy.url_for() == f"amqp://guest:guest@127.0.0.1:{proxy.port}//"


def test_cut_with_fin_makes_the_next_read_fail(proxy: FaultProxy) -> None:
    with connection(proxy.host) as conn:
        assert proxy.cut() == 1
        with pytest.raises(OSError, match="Server unexpectedly closed connection"):
            conn.drain_events(timeout=2)


def test_cut_with_rst_resets_the_connection(proxy: FaultProxy) -> None:
    with connection(proxy.host) as conn:
        channel = conn.channel()
        proxy.cut(rst=True)
        with pytest.raises(ConnectionResetError):
            channel.basic_publish(amqp.Message(b"lost"), routing_key="nowhere")


def test_refuse_refuses_new_connections_until_accept(proxy: FaultProxy) -> None:
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.host)
    proxy.accept()
    with connection(proxy.host) as conn:
        assert conn.connected


def test_blackhole_is_detected_only_by_heartbeats(proxy: FaultProxy) -> None:
    with connection(proxy.host, heartbeat=2) as conn:
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(ConnectionForced, match="heartbeats missed"):
            while time.monotonic() - started < 15:
                conn.heartbeat_tick()
                time.sleep(0.25)
    assert proxy.bytes_dropped > 0


def test_blackhole_stalls_a_new_connection_until_healed(proxy: FaultProxy) -> None:
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        amqp.Connection(host=proxy.host, connect_timeout=0.5).connect()
    proxy.heal()
    assert proxy.active_connections == 0  # the blackholed one was reset
    with connection(proxy.host) as conn:
        assert conn.connected


def test_latency_delays_both_directions(proxy: FaultProxy) -> None:
    with connection(proxy.host) as conn:
        channel = conn.channel()
        proxy.latency(0.2)
        started = time.monotonic()
        channel.basic_qos(0, 10, False)  # one request, one reply: two delayed chunks
        assert time.monotonic() - started >= 0.4
        assert proxy.mode == "latency(0.2)"


def test_close_closes_every_socket(fault_proxy: ProxyFactory, rabbitmq_url: str) -> None:
    proxy = fault_proxy(RABBITMQ_PORT)
    with connection(proxy.host) as conn:
        proxy.close()
        with pytest.raises(OSError, match="Server unexpectedly closed connection"):
            conn.drain_events(timeout=2)
    assert "mode=closed active=0" in repr(proxy)
    with pytest.raises(RuntimeError, match="closed"):
        proxy.cut()


# -- epmd ---------------------------------------------------------------------------


@pytest.fixture
def epmd_port() -> int:
    """A free port for a throw-away epmd (4370/4371 belong to the shared ones)."""
    if shutil.which("epmd") is None:
        skip_or_fail("Erlang's epmd is not on PATH")
    for port in range(4380, 4400):
        if refuses(port):
            return port
    skip_or_fail("no free port for a throw-away epmd in 4380-4399")


def test_close_succeeds_when_the_loop_runs_it_before_the_wake_byte_goes_out() -> None:
    # The race CI once hit: close() queues its command, the loop thread (awake
    # for other traffic) runs it and closes its sockets before close() sends the
    # wake-up byte, whose send then fails with EBADF.
    proxy = FaultProxy("127.0.0.1", RABBITMQ_PORT)
    wake = proxy._wake_w

    class WakeAfterTheLoopExited:
        def send(self, data: bytes) -> int:
            wake.send(data)  # the loop runs the queued command and exits...
            proxy._thread.join(5.0)
            return wake.send(data)  # ...so this send fails, as in the race

        def close(self) -> None:
            wake.close()

    proxy._wake_w = WakeAfterTheLoopExited()  # type: ignore[assignment]
    proxy.close()
    assert not proxy._thread.is_alive()


def test_epmd_is_started_once_and_stopped_by_its_last_user(epmd_port: int) -> None:
    daemon = EpmdDaemon(epmd_port)
    daemon.acquire()
    daemon.acquire()
    pid = daemon.pid
    assert pid is not None and not refuses(daemon.port)
    daemon.release()
    assert pid_alive(pid)
    daemon.release()
    assert wait_gone(pid, 5.0)
    assert refuses(daemon.port)


def test_epmd_still_used_by_another_process_is_stopped_when_that_one_is_done(
    epmd_port: int,
) -> None:
    daemon = EpmdDaemon(epmd_port)
    daemon.acquire()
    pid = daemon.pid
    assert pid is not None
    # A second open file description stands for another process's shared lock.
    other_user = os.open(daemon.lock_path, os.O_RDWR)
    fcntl.flock(other_user, fcntl.LOCK_SH)
    try:
        daemon.release()
        time.sleep(0.3)
        assert pid_alive(pid)
    finally:
        os.close(other_user)
    assert wait_gone(pid, 5.0)
    assert daemon.pid is None


def test_epmd_started_by_someone_else_is_used_but_never_stopped(epmd_port: int) -> None:
    port = epmd_port
    foreign = subprocess.Popen(["epmd", "-port", str(port), "-address", "127.0.0.1"])
    try:
        wait_until(lambda: not refuses(port), 5, message="the foreign epmd did not listen")
        daemon = EpmdDaemon(port)
        daemon.acquire()
        assert daemon.pid is None
        daemon.release()
        assert foreign.poll() is None
    finally:
        foreign.terminate()
        foreign.wait(5)


# -- extra nodes --------------------------------------------------------------------


def test_node_accepts_amqp_from_loopback(rabbit_node: RabbitNode) -> None:
    with connection(rabbit_node.host) as conn:
        assert conn.server_properties["product"] == "RabbitMQ"
    assert rabbit_node.is_running
    assert rabbit_node.beam_pid in rabbit_node.pids()
    assert rabbit_node.url == f"amqp://guest:guest@127.0.0.1:{rabbit_node.port}//"
    assert rabbit_node.nodename.startswith(f"rabbit{rabbit_node.port}@")


def test_two_nodes_are_independent_brokers(
    rabbit_nodes: tuple[RabbitNode, RabbitNode], unique_name: str
) -> None:
    a, b = rabbit_nodes
    assert a.port != b.port
    with connection(a.host) as on_a, connection(b.host) as on_b:
        on_a.channel().queue_declare(unique_name, exclusive=True)
        with pytest.raises(NotFound):
            on_b.channel().queue_declare(unique_name, passive=True)


def test_memory_alarm_blocks_and_unblocks_a_publisher(
    rabbit_node: RabbitNode, unique_name: str
) -> None:
    events: list[str] = []
    with connection(
        rabbit_node.host,
        on_blocked=lambda reason: events.append("blocked"),
        on_unblocked=lambda: events.append("unblocked"),
    ) as conn:
        channel = conn.channel()
        channel.queue_declare(unique_name, exclusive=True)
        try:
            rabbit_node.set_memory_alarm(True)
            # Only a connection that publishes is told it is blocked.
            channel.basic_publish(amqp.Message(b"x"), routing_key=unique_name)
            drain_until(conn, lambda: "blocked" in events, timeout=15)
        finally:
            rabbit_node.set_memory_alarm(False)
        drain_until(conn, lambda: "unblocked" in events, timeout=15)
    assert events == ["blocked", "unblocked"]


def test_kill_refuses_at_once_and_restart_keeps_durable_messages(
    rabbit_node: RabbitNode, unique_name: str
) -> None:
    with connection(rabbit_node.host, confirm_publish=True) as conn:
        channel = conn.channel()
        channel.queue_declare(unique_name, durable=True, auto_delete=False)
        # Confirmed + persistent + durable queue: the message is on disk.
        channel.basic_publish(amqp.Message(b"survivor", delivery_mode=2), routing_key=unique_name)
        # The declaration too, before the kill -- not whenever the broker gets to it:
        # seen by another connection (registered node-wide), and its record synced.
        with connection(rabbit_node.host) as other:
            assert other.channel().queue_declare(unique_name, passive=True).message_count == 1
        rabbit_node.sync_metadata()
        rabbit_node.kill()
        wait_until(lambda: refuses(rabbit_node.port), 1.0, message="the port still accepts")
        assert not rabbit_node.is_running

    rabbit_node.restart()

    with connection(rabbit_node.host) as conn:
        channel = conn.channel()
        message = channel.basic_get(unique_name, no_ack=True)
        channel.queue_delete(unique_name)
    assert message is not None and message.body == b"survivor"


def test_close_stops_every_process_and_removes_the_data(
    rabbit_node_factory: Callable[..., RabbitNode],
) -> None:
    node = rabbit_node_factory()
    node.start()
    pids = node.pids()
    assert node.beam_pid in pids
    assert len(pids) >= 3  # launcher, beam, erl_child_setup (which calls setsid)
    node.stop()  # graceful: the beam removes its pid file
    assert not node.is_running
    assert not node.pid_file.exists()
    node.close()
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not node.base_dir.exists()
    # The port lock is released: a new node can claim the same port.
    rabbit_node_factory(port=node.port).close()
