"""Self-tests of the Redis Sentinel harness, with redis-py (not brokerpool).

The failover test prints how long the Sentinels took to report the replica
as master after ``kill -9`` of the master (run with ``-s`` or ``-rP``).
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.rabbitnode import pid_alive
from tests.support.redisnode import RedisNode
from tests.support.sentinel import MASTER_NAME, SentinelDeployment


def client(node: RedisNode) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port, socket_timeout=5)


def role(node: RedisNode) -> str:
    with client(node) as c:
        reply = c.execute_command("ROLE")
    return str(reply[0].decode())


def test_the_sentinels_report_the_master(redis_sentinel: SentinelDeployment) -> None:
    master, replica = redis_sentinel.master, redis_sentinel.replica
    assert redis_sentinel.master_address() == ("127.0.0.1", master.port)
    assert (role(master), role(replica)) == ("master", "slave")
    assert redis_sentinel.sentinel_urls == [
        f"sentinel://127.0.0.1:{node.port}" for node in redis_sentinel.sentinels
    ]
    for sentinel in redis_sentinel.sentinels:
        with client(sentinel) as c:
            state = c.sentinel_master(MASTER_NAME)
        assert (state["down-after-milliseconds"], state["failover-timeout"]) == (1000, 5000)
        assert (state["num-slaves"], state["num-other-sentinels"], state["quorum"]) == (1, 2, 2)
    assert redis_sentinel.node_at(("127.0.0.1", replica.port)) is replica


def test_wait_on_the_master_counts_the_replica_only_while_it_is_up(
    redis_sentinel: SentinelDeployment,
) -> None:
    with client(redis_sentinel.master) as master:
        master.set("key", "value")
        assert master.wait(1, 5000) == 1
        redis_sentinel.replica.kill()
        master.set("key", "other value")
        assert master.wait(1, 100) == 0


def test_after_kill_master_the_sentinels_report_the_replica_as_master(
    redis_sentinel: SentinelDeployment,
) -> None:
    master, replica = redis_sentinel.master, redis_sentinel.replica
    pid = master.pid
    assert pid is not None

    killed_at = time.monotonic()
    old = redis_sentinel.kill_master()
    assert old == ("127.0.0.1", master.port)
    assert not pid_alive(pid)
    new = redis_sentinel.wait_for_failover(old, timeout=30)
    took = time.monotonic() - killed_at
    print(f"\n[sentinel] kill -9 of the master: the replica reported as master after {took:.2f} s")
    assert new == ("127.0.0.1", replica.port)
    assert role(replica) == "master"

    restarted_at = time.monotonic()
    redis_sentinel.restart(master)  # the former master: back, seen up by every Sentinel
    took = time.monotonic() - restarted_at
    print(f"[sentinel] the former master restarted and seen up by the Sentinels in {took:.2f} s")
    assert master.is_running
    assert redis_sentinel.master_address() == new


def test_closing_leaves_no_server_and_no_directory_even_after_an_error(
    new_redis_sentinel: SentinelDeployment,
) -> None:
    deployment = new_redis_sentinel
    nodes = (*deployment.data_nodes, *deployment.sentinels)

    class TestBodyFailed(Exception):
        pass

    with pytest.raises(TestBodyFailed), deployment:  # what the redis_sentinel fixture does
        pids = deployment.pids()
        assert len(pids) == 5
        raise TestBodyFailed

    assert not [pid for pid in pids if pid_alive(pid)]
    assert not [node.base_dir for node in nodes if node.base_dir.exists()]
    assert "running=0/5 closed" in repr(deployment)
