"""Self-tests of the Redis reliability infrastructure: private ``redis-server`` nodes.

They talk raw RESP or redis-py, not the code under test, and check what a
client sees when a node is started, killed, restarted, stopped and closed,
and that the fixtures leave no process or directory behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.rabbitnode import pid_alive, process_tree
from tests.support.redisnode import (
    REDIS_PORTS,
    RedisNode,
    redis_ping,
    require_redis_nodes,
    resp_ping,
)

pytestmark = pytest.mark.extra_nodes

NodeFactory = Callable[..., RedisNode]


def refuses(port: int) -> bool:
    """Whether a TCP connect to 127.0.0.1:port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def raw_ping(port: int) -> bytes:
    """Send ``PING`` as raw RESP and return the first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)


def client(node: RedisNode, db: int = 0) -> redis.Redis:
    """A redis-py client of ``node`` that gives up quickly."""
    return redis.Redis.from_url(node.url(db), socket_timeout=2, socket_connect_timeout=2)


# -- one node -----------------------------------------------------------------------


def test_node_starts_and_answers_ping(redis_node_factory: NodeFactory) -> None:
    node = redis_node_factory()
    assert node.port in REDIS_PORTS
    assert not node.is_running and node.pid is None
    assert refuses(node.port)
    assert f"127.0.0.1:{node.port} down" in repr(node)

    node.start()

    assert raw_ping(node.port) == b"+PONG\r\n"
    assert node.ping() and redis_ping("127.0.0.1", node.port)
    assert node.is_running and node.pid is not None and pid_alive(node.pid)
    assert node.started_pids == [node.pid]
    assert repr(node) == f"<RedisNode 127.0.0.1:{node.port} running pid={node.pid}>"
    assert node.url() == f"redis://127.0.0.1:{node.port}/0"
    assert node.url(db=5) == f"redis://127.0.0.1:{node.port}/5"
    with client(node, db=5) as conn:
        conn.set("greeting", "hello")
        assert conn.get("greeting") == b"hello"
        assert conn.config_get("save") == {"save": ""}
        assert conn.config_get("appendonly") == {"appendonly": "no"}
        assert conn.config_get("dir") == {"dir": str(node.base_dir)}
    node.start()  # already running: a no-op
    assert node.started_pids == [node.pid]


def test_kill_refuses_at_once_and_restart_comes_back_on_the_same_port(
    redis_node_factory: NodeFactory,
) -> None:
    node = redis_node_factory()
    node.start()
    port, old_pid = node.port, node.pid
    assert old_pid is not None
    with client(node) as conn:
        conn.set("lost", "on restart")

    node.kill()

    assert refuses(port)  # at once: no polling
    assert not pid_alive(old_pid)
    assert not node.is_running and node.pid is None
    assert f"127.0.0.1:{port} down pid=None" in repr(node)

    node.restart()

    assert node.port == port and node.ping()
    assert node.pid is not None and node.pid != old_pid
    assert node.started_pids == [old_pid, node.pid]
    with client(node) as conn:
        assert conn.get("lost") is None  # no persistence: a restart starts empty


def test_stop_is_graceful_and_restart_works_after_it(redis_node_factory: NodeFactory) -> None:
    node = redis_node_factory()
    node.start()
    pid = node.pid
    assert pid is not None

    node.stop()

    assert not pid_alive(pid) and refuses(node.port) and not node.is_running
    assert "ready to exit" in node.log_file.read_text()  # it shut down, not killed
    node.stop()  # already down: a no-op
    node.kill()
    node.restart(graceful=False)
    assert node.ping()


def test_close_leaves_no_process_and_removes_the_directory(
    redis_node_factory: NodeFactory,
) -> None:
    node = redis_node_factory()
    node.start()
    pids = node.pids()
    assert pids == {node.pid}
    base_dir = node.base_dir
    assert (base_dir / "redis.log").exists()

    node.close()

    assert not any(pid_alive(pid) for pid in [*pids, *node.started_pids])
    assert not base_dir.exists()
    assert refuses(node.port)
    assert node.closed and not node.is_running
    assert repr(node) == f"<RedisNode 127.0.0.1:{node.port} closed pid=None>"
    node.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        node.start()
    redis_node_factory(port=node.port).close()  # the port was released


def test_context_manager_starts_and_closes() -> None:
    with RedisNode() as node:
        assert node.ping()
        pid = node.pid
        assert pid is not None
    assert node.closed and not pid_alive(pid) and not node.base_dir.exists()


def test_a_server_that_cannot_start_is_reported_and_reaped(
    redis_node_factory: NodeFactory,
) -> None:
    node = redis_node_factory(extra_args=["--no-such-option", "yes"])
    with pytest.raises(RuntimeError, match=r"(?s)exited.*no-such-option"):
        node.start()
    assert not node.is_running
    assert not any(pid_alive(pid) for pid in node.started_pids)


def test_ports_are_claimed_once(redis_node_factory: NodeFactory) -> None:
    a, b = redis_node_factory(), redis_node_factory()
    assert a.port != b.port
    with pytest.raises(RuntimeError, match="no free port"):
        RedisNode(port=a.port)  # claimed by a, even while it is not running
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        with pytest.raises(RuntimeError, match="no free port"):
            RedisNode(port=stranger.getsockname()[1])


def test_extra_args_reach_the_server(redis_node_factory: NodeFactory) -> None:
    node = redis_node_factory(extra_args=("--requirepass", "s3cr3t"))
    node.start()  # ready although PING without AUTH gets -NOAUTH
    assert not node.ping()
    assert (resp_ping("127.0.0.1", node.port) or b"").startswith(b"-NOAUTH")
    with client(node) as conn, pytest.raises(redis.AuthenticationError):
        conn.ping()
    url = node.url().replace("redis://", "redis://:s3cr3t@")
    with redis.Redis.from_url(url, socket_timeout=2) as conn:
        assert conn.ping()


# -- two nodes ----------------------------------------------------------------------


def test_two_nodes_are_independent_servers(redis_nodes: tuple[RedisNode, RedisNode]) -> None:
    a, b = redis_nodes
    assert a.port != b.port and a.ping() and b.ping()
    assert a.base_dir != b.base_dir
    with client(a) as conn_a, client(b) as conn_b:
        conn_a.set("where", "a")
        assert conn_b.get("where") is None
        a.kill()
        assert conn_b.ping()  # B does not care
    assert refuses(a.port) and b.ping()


# -- the fixtures clean up ------------------------------------------------------------


@pytest.fixture
def check_after_teardown() -> Iterator[list[RedisNode]]:
    """Collects nodes; after the test's other fixtures are torn down, checks they are gone.

    Request the fixture under test with ``request.getfixturevalue`` in the
    test body: it is then set up after this one, so torn down before.
    """
    nodes: list[RedisNode] = []
    yield nodes
    assert nodes, "the test registered no node"
    for node in nodes:
        assert node.closed, node
        assert not node.base_dir.exists(), node
        assert not any(pid_alive(pid) for pid in node.started_pids), node
        assert refuses(node.port), node


def test_redis_node_factory_closes_every_node(
    request: pytest.FixtureRequest, check_after_teardown: list[RedisNode]
) -> None:
    factory: NodeFactory = request.getfixturevalue("redis_node_factory")
    running, killed, never_started = factory(), factory(), factory()
    running.start()
    killed.start()
    killed.kill()
    check_after_teardown += [running, killed, never_started]
    assert running.ping()


def test_redis_nodes_are_closed_after_the_test(
    request: pytest.FixtureRequest, check_after_teardown: list[RedisNode]
) -> None:
    nodes: tuple[RedisNode, RedisNode] = request.getfixturevalue("redis_nodes")
    check_after_teardown += nodes
    assert all(node.is_running for node in nodes)


def test_no_redis_server_of_this_process_outlives_its_test() -> None:
    """Earlier tests closed every node they made: no server started here still runs."""
    ours = process_tree(os.getpid()) - {os.getpid()}
    servers = []
    for pid in ours:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server" and pid_alive(pid):
                servers.append(pid)
    assert servers == []


# -- no redis-server installed ----------------------------------------------------------


def test_without_redis_server_nodes_skip_or_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    with pytest.raises(RuntimeError, match="redis-server is not installed"):
        RedisNode()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        require_redis_nodes()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and extra Redis nodes cannot start"):
        require_redis_nodes()
