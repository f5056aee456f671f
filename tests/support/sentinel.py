"""Redis Sentinel on loopback: a master, one replica and three Sentinels.

Every server is a private :class:`RedisNode` on a claimed port with its own
directory; the machine's Redis on 6379 is never touched. Each Sentinel runs
``redis-server sentinel.conf --sentinel`` with a config file of its own
(Sentinel rewrites it) watching the master as ``mymaster``::

    with SentinelDeployment() as redis_sentinel:     # a few seconds
        redis_sentinel.master_address()              # ("127.0.0.1", master port)
        old = redis_sentinel.kill_master()           # kill -9
        redis_sentinel.wait_for_failover(old)        # the replica, about 2 s later
    # every server stopped, every directory removed
"""

from __future__ import annotations

import time
from types import TracebackType

import redis
import redis.sentinel

from tests.support.redisnode import RedisNode, install_problem

__all__ = ["DOWN_AFTER_MS", "FAILOVER_TIMEOUT_MS", "MASTER_NAME", "SentinelDeployment"]

MASTER_NAME = "mymaster"
#: How long the master may be silent before a Sentinel thinks it is down.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
#: Sentinels that must agree the master is down before one fails it over.
QUORUM = 2
#: For master and replica alike (either may be the master): the first sync
#: starts at once instead of after 5 s, and a graceful stop does not wait for
#: replicas to catch up.
_DATA_NODE_ARGS = ("--repl-diskless-sync-delay", "0", "--shutdown-timeout", "0")

Address = tuple[str, int]


def _sentinel_config(master: RedisNode) -> str:
    """A Sentinel's config file; port, bind and dir come from RedisNode's options."""
    return "\n".join(
        (
            "sentinel resolve-hostnames no",
            f"sentinel monitor {MASTER_NAME} {master.host} {master.port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            "",
        )
    )


def _client(node: RedisNode) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port, socket_timeout=2.0)


class SentinelDeployment:
    """A Redis master, its replica and Sentinels watching it, all on 127.0.0.1.

    Nothing runs until :meth:`start` (or ``with``); :meth:`close` (or leaving
    the ``with`` block, also by an exception) stops every server and removes
    every directory.

    Args:
        sentinels: How many Sentinels watch the master (quorum 2).

    Attributes:
        master: The node started as the master (after a failover it may be a
            replica, or down: ask :meth:`master_address`).
        replica: The node started as the master's replica.
        sentinels: The Sentinel nodes.
    """

    def __init__(self, sentinels: int = 3) -> None:
        problem = install_problem()
        if problem is not None:
            raise RuntimeError(problem)
        made: list[RedisNode] = []
        try:
            self.master = RedisNode(extra_args=_DATA_NODE_ARGS)
            made.append(self.master)
            replica_of = ("--replicaof", self.master.host, str(self.master.port))
            self.replica = RedisNode(extra_args=(*_DATA_NODE_ARGS, *replica_of))
            made.append(self.replica)
            config = _sentinel_config(self.master)
            for _ in range(sentinels):
                made.append(RedisNode(config=config, extra_args=("--sentinel",)))
        except BaseException:
            for node in made:
                node.close()
            raise
        self.sentinels: tuple[RedisNode, ...] = tuple(made[2:])
        # redis-py's Sentinel is not annotated.
        self._asker = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            [(node.host, node.port) for node in self.sentinels], socket_timeout=1.0
        )
        self._closed = False

    @property
    def sentinel_urls(self) -> list[str]:
        """``sentinel://127.0.0.1:PORT`` of every Sentinel."""
        return [f"sentinel://{node.host}:{node.port}" for node in self.sentinels]

    @property
    def data_nodes(self) -> tuple[RedisNode, RedisNode]:
        """The master and the replica, as started."""
        return self.master, self.replica

    def node_at(self, address: Address) -> RedisNode:
        """The master or replica node listening on ``address``.

        Raises:
            LookupError: Neither listens there.
        """
        for node in self.data_nodes:
            if (node.host, node.port) == tuple(address):
                return node
        raise LookupError(f"no data node of {self!r} at {address}")

    def pids(self) -> set[int]:
        """Live pids of every server."""
        return set().union(*(node.pids() for node in (*self.data_nodes, *self.sentinels)))

    def __repr__(self) -> str:
        nodes = (*self.data_nodes, *self.sentinels)
        running = sum(node.is_running for node in nodes)
        return (
            f"<SentinelDeployment {MASTER_NAME} master={self.master.port}"
            f" replica={self.replica.port}"
            f" sentinels={','.join(str(node.port) for node in self.sentinels)}"
            f" running={running}/{len(nodes)}{' closed' if self._closed else ''}>"
        )

    # -- life cycle -----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the servers and wait until the Sentinels can fail the master over.

        Ready means the replica's link to the master is up, and every Sentinel
        knows the replica and the other Sentinels (they find each other
        through the master, in about 2 s).

        Raises:
            TimeoutError: Not ready within ``timeout`` seconds.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        deadline = time.monotonic() + timeout
        self.master.start()
        self.replica.start()
        # A Sentinel learns of replicas from the master's INFO, which it asks
        # for on connecting and then every 10 s: the link must be up first.
        while not self._replica_linked():
            self._pause_or_fail(deadline, "the replica's link to the master is not up")
        for node in self.sentinels:
            node.start()
        while not self._sentinels_ready():
            self._pause_or_fail(deadline, "the Sentinels do not know the replica and each other")

    def restart(self, node: RedisNode, timeout: float = 30.0) -> None:
        """Start a master or replica node again (stopping it first if it runs).

        Returns once every Sentinel sees it up again. It comes back with its
        start-up role and no data; about 10 s later the Sentinels turn a former
        master into a replica of the current one.

        Raises:
            TimeoutError: A Sentinel still sees it down after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        node.restart()
        while not all(self._seen_up(sentinel, node) for sentinel in self.sentinels):
            self._pause_or_fail(deadline, f"a Sentinel still sees {node!r} down")

    def close(self) -> None:
        """Stop every server and remove every directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        errors: list[Exception] = []
        self._asker.close()
        for node in (*self.sentinels, *self.data_nodes):  # every node, even when one fails
            try:
                node.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> SentinelDeployment:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- failover -------------------------------------------------------------------

    def master_address(self) -> Address:
        """The master's ``(host, port)`` as the Sentinels report it (asked with redis-py).

        Raises:
            redis.sentinel.MasterNotFoundError: No Sentinel reports a master
                that is up (for example during a failover).
        """
        host, port = self._asker.discover_master(MASTER_NAME)  # type: ignore[no-untyped-call]
        return str(host), int(port)

    def kill_master(self) -> Address:
        """``kill -9`` the current master; return the address it had."""
        address = self.master_address()
        self.node_at(address).kill()
        return address

    def wait_for_failover(self, old: Address, timeout: float = 30.0) -> Address:
        """Wait until the Sentinels report a master other than ``old``; return it.

        Raises:
            TimeoutError: Still no other master after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                address = self.master_address()
            except redis.sentinel.MasterNotFoundError:  # the old one is down, no new one yet
                address = old
            if address != old:
                return address
            self._pause_or_fail(deadline, f"the Sentinels still report no master other than {old}")

    # -- internals ------------------------------------------------------------------

    def _pause_or_fail(self, deadline: float, problem: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{self!r}: {problem}")
        time.sleep(0.05)

    def _replica_linked(self) -> bool:
        with _client(self.replica) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _seen_up(self, sentinel: RedisNode, node: RedisNode) -> bool:
        """Whether ``sentinel`` knows ``node`` (as the master or a replica) and is linked to it."""
        with _client(sentinel) as client:
            states = [client.sentinel_master(MASTER_NAME), *client.sentinel_slaves(MASTER_NAME)]
        return any(
            (state["ip"], state["port"]) == (node.host, node.port)
            and not state["is_sdown"]
            and not state["is_disconnected"]  # a fresh entry is disconnected but not down yet
            for state in states
        )

    def _sentinels_ready(self) -> bool:
        for node in self.sentinels:
            with _client(node) as client:
                state = client.sentinel_master(MASTER_NAME)
            others = len(self.sentinels) - 1
            if state["num-slaves"] != 1 or state["num-other-sentinels"] != others:
                return False
        return True
