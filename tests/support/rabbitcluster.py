"""A three-node RabbitMQ cluster on loopback, built from :class:`RabbitNode` members.

The machine's RabbitMQ on 5672 and the system epmd are never touched: the
members are private nodes (see :mod:`tests.support.rabbitnode`) on AMQP ports
of their own range, sharing one Erlang cookie and one private epmd, and nodes
2 and 3 join node 1 with ``rabbitmqctl join_cluster``::

    with RabbitCluster() as cluster:          # 20-30 s on 2 busy cores
        amqp.Connection(host=cluster.nodes[0].host)
        leader = cluster.wait_for_leader("orders")   # a quorum queue's leader
        cluster.kill(leader)                  # kill -9 of that node's beam
        cluster.wait_for_leader("orders")     # the survivors elect a new one
        cluster.start(leader)                 # restarts on its data: rejoins
    # every process stopped, every directory removed

A member keeps its cluster membership in its data directory, so a killed or
stopped member rejoins by starting again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from types import TracebackType

from tests.support.rabbitnode import RabbitNode, install_problem

__all__ = ["CLUSTER_AMQP_PORTS", "CLUSTER_EPMD_PORT", "RabbitCluster"]

#: AMQP ports members are picked from: apart from the single nodes' 5673-5679
#: and the TLS node's 5690/5691, so that tiers running side by side never compete.
CLUSTER_AMQP_PORTS = range(5680, 5690)
#: The cluster's private epmd (4370 is the single nodes', 4371 the TLS node's).
CLUSTER_EPMD_PORT = 4372


class RabbitCluster:
    """Private RabbitMQ nodes on 127.0.0.1 joined into one cluster.

    Nothing runs until :meth:`form` (or entering ``with``); :meth:`close` (or
    leaving the ``with`` block, also by an exception) kills every process and
    deletes every directory.

    Args:
        size: Number of members; node 1 is the seed the others join.
        ports: AMQP ports the members are claimed from (the distribution
            port is AMQP + 20000, see :class:`RabbitNode`).
        epmd_port: Port of the private epmd the members share.
        start_timeout: Seconds each member may take to boot.

    Attributes:
        nodes: The members, seed first, in a fixed order.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        ports: Sequence[int] = CLUSTER_AMQP_PORTS,
        epmd_port: int = CLUSTER_EPMD_PORT,
        start_timeout: float = 60.0,
    ) -> None:
        problem = install_problem()
        if problem is not None:
            raise RuntimeError(problem)
        cookie = f"BPCLUSTER{os.urandom(12).hex().upper()}"  # one for all: Erlang requires it
        nodes: list[RabbitNode] = []
        last_error: RuntimeError | None = None
        try:
            for port in ports:
                if len(nodes) == size:
                    break
                try:
                    node = RabbitNode(
                        port, epmd_port=epmd_port, cookie=cookie, start_timeout=start_timeout
                    )
                except RuntimeError as exc:  # most likely another process holds this port
                    last_error = exc
                    continue
                nodes.append(node)
            if len(nodes) < size:
                wanted = f"{size} free AMQP ports for a cluster in {ports!r}"
                raise RuntimeError(f"found no {wanted} (last error: {last_error})")
        except BaseException:
            for node in nodes:
                node.close()
            raise
        self.nodes: tuple[RabbitNode, ...] = tuple(nodes)
        self._formed = False
        self._closed = False

    # -- what it is -----------------------------------------------------------------

    @property
    def seed(self) -> RabbitNode:
        """Node 1, the one the other members joined."""
        return self.nodes[0]

    @property
    def urls(self) -> list[str]:
        """``amqp://guest:guest@127.0.0.1:PORT//`` of every member, in node order."""
        return [node.url for node in self.nodes]

    def node_of(self, port: int) -> RabbitNode:
        """The member listening for AMQP on ``port``.

        Raises:
            LookupError: No member has that port.
        """
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no member of {self!r} listens on port {port}")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran; a closed cluster cannot start again."""
        return self._closed

    def pids(self) -> set[int]:
        """Live pids of every member: launchers, beams and what they started."""
        return set().union(*(node.pids() for node in self.nodes))

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("formed" if self._formed else "new")
        running = sum(node.is_running for node in self.nodes)
        ports = ",".join(str(node.port) for node in self.nodes)
        return f"<RabbitCluster ports={ports} {state} running={running}/{len(self.nodes)}>"

    # -- life cycle -----------------------------------------------------------------

    def form(self) -> None:
        """Boot every member (in parallel), join nodes 2.. to node 1, wait until ready.

        Ready means ``cluster_status`` lists every member as running and every
        AMQP port completes a handshake. On a formed cluster, this starts the
        members that are down. If it fails, the cluster is closed.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        try:
            _boot(self.nodes)
            if not self._formed:
                # One at a time: RabbitMQ documents joins as sequential.
                for node in self.nodes[1:]:
                    node.ctl("stop_app")
                    node.ctl("join_cluster", self.seed.nodename)
                    node.ctl("start_app")
                    node.wait_until_ready()
                self._formed = True
            self.wait_for_members()
        except BaseException:
            self.close()
            raise

    def start(self, node: RabbitNode) -> None:
        """Start a stopped or killed member; return once the cluster lists it running."""
        node.start()
        self.wait_for_members()

    def stop(self, node: RabbitNode) -> None:
        """Stop a member gracefully (SIGTERM to its beam); its data stays."""
        node.stop()

    def kill(self, node: RabbitNode) -> None:
        """``kill -9`` the member's beam by pid (and its helpers): its port refuses at once."""
        node.kill()

    def restart(self, node: RabbitNode, graceful: bool = True) -> None:
        """Stop (or kill) a member, start it again and wait until it has rejoined."""
        node.restart(graceful)
        self.wait_for_members()

    def heal(self) -> None:
        """Start every member that is down, so that all of them run again."""
        down = [node for node in self.nodes if not node.is_running]
        if down:
            _boot(down)
            self.wait_for_members()

    def close(self) -> None:
        """Kill every member's processes, release the ports and delete the data (idempotent)."""
        if self._closed:
            return
        self._closed = True
        errors: list[Exception] = []
        for node in self.nodes:  # every node, even when one fails
            try:
                node.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> RabbitCluster:
        self.form()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- asking the cluster -----------------------------------------------------------

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE *args`` for a member; its stdout.

        Raises:
            RuntimeError: rabbitmqctl failed (its output is quoted).
        """
        return node.ctl(*args, timeout=timeout)

    def running_members(self, via: RabbitNode | None = None) -> set[RabbitNode]:
        """The members ``cluster_status`` lists as running.

        Args:
            via: The member to ask; by default the first one that runs.
        """
        asked = self._running_node() if via is None else via
        status = json.loads(self.ctl(asked, "cluster_status", "--formatter", "json"))
        running = set(status["running_nodes"])
        return {node for node in self.nodes if node.nodename in running}

    def wait_for_members(self, timeout: float = 60.0) -> None:
        """Wait until ``cluster_status`` lists exactly the members whose beams run.

        Raises:
            TimeoutError: The cluster did not agree within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            expected = {node for node in self.nodes if node.is_running}
            seen = self.running_members()
            if seen == expected:
                return
            if time.monotonic() > deadline:
                names = sorted(node.nodename for node in seen)
                raise TimeoutError(f"{self!r}: cluster_status lists {names} as running")
            time.sleep(0.2)

    def leader_of(self, queue: str) -> RabbitNode | None:
        """The member that ``list_queues name leader`` names as ``queue``'s leader.

        Asked from a running member. None when the queue is unknown or has no
        leader (a classic queue, or no leader elected yet). The answer may
        still name a member that was just killed: see :meth:`wait_for_leader`.
        """
        out = self.ctl(
            self._running_node(), "list_queues", "name", "leader", "--quiet", "--no-table-headers"
        )
        for line in out.splitlines():
            name, _, leader = line.partition("\t")
            if name == queue:
                return next((node for node in self.nodes if node.nodename == leader), None)
        return None

    def wait_for_leader(self, queue: str, timeout: float = 30.0) -> RabbitNode:
        """Wait until ``queue``'s leader is a member that runs, and return it.

        Raises:
            TimeoutError: No running member leads ``queue`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader_of(queue)
            if leader is not None and leader.is_running:
                return leader
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r}: no running leader for {queue!r} (last: {leader!r})")
            time.sleep(0.1)

    def _running_node(self) -> RabbitNode:
        for node in self.nodes:
            if node.is_running:
                return node
        raise RuntimeError(f"{self!r}: no member is running")


def _boot(nodes: Sequence[RabbitNode]) -> None:
    """Start ``nodes`` and wait until each is ready; launched together, the boots overlap."""
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_until_ready()
