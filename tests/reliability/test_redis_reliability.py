"""Reliability of the ``redis://`` transport against real, private ``redis-server`` nodes.

What is checked (see the lease / visibility_timeout model in
``transports/redis.py``):

* a consumer killed with SIGKILL while holding unacked messages loses none:
  they come back, flagged redelivered, once its lease ran out -- and not
  before;
* a consumer frozen (SIGSTOP) past its lease loses its messages to another
  consumer, and its late acks are refused (never both redelivered and acked);
* a live consumer busy in user code keeps its unacked messages (the
  heartbeat thread renews its lease);
* a connection (or channel) closed cleanly returns its unacked messages at
  once;
* failover after ``kill -9`` of the first node, and past a refused first URL;
* a blackholed Redis is detected within a few seconds and
  ``ensure_connection`` fails over;
* a :class:`~broker.ConsumerLoop` survives a Redis restart that lost every
  key: the topology is declared again and consuming resumes by itself.

Two tests pin down bugs they found: a client that only polls with
``basic_get`` still gets a dead consumer's messages back, and an idle
consumer sends Redis nothing but its lease renewals.

Every node is a private ``redis-server`` of the test (no persistence, loopback
only), every process started here is stopped here. Figures are printed; see
them with ``pytest -s``.
"""

from __future__ import annotations

import collections
import contextlib
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from broker import Connection, Consumer, ConsumerLoop, Exchange, Queue
from broker.errors import HeartbeatTimeout, RecoverableConnectionError
from tests.support.failover import publish_across_a_kill
from tests.support.faultproxy import FaultProxy
from tests.support.net import free_port
from tests.support.redisnode import RedisNode
from tests.support.wait import drain_for, drain_until, wait_until
from transports.redis.options import keyspace

pytestmark = pytest.mark.timeout(60)

CHILD = Path(__file__).with_name("redis_consumer_child.py")
REPO = Path(__file__).resolve().parents[2]
PREFIX = "bp-rel:"
KEYS = keyspace(PREFIX, 0)  # what the transport's keys start with in db 0 (hash-tagged)
VT = 2.0  # visibility_timeout of the lease tests, in seconds

Nodes = tuple[RedisNode, RedisNode]


# -- helpers ----------------------------------------------------------------------


def options(visibility_timeout: float = VT) -> dict[str, Any]:
    return {"visibility_timeout": visibility_timeout, "key_prefix": PREFIX}


def raw(node: RedisNode) -> redis.Redis:
    """A plain redis-py client of ``node`` (to look at the keys, not through brokerpool)."""
    return redis.Redis.from_url(node.url(), socket_timeout=5, socket_connect_timeout=5)


def publish(url: str, queue: str, count: int, **opts: Any) -> None:
    """Declare ``queue`` (durable, not auto-deleted) and put ``count`` numbered messages in it."""
    with Connection(url, transport_options=options(**opts)) as conn:
        channel = conn.channel()
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        for seq in range(count):
            channel.basic_publish(
                channel.prepare_message(str(seq).encode()), exchange="", routing_key=queue
            )


def ready_count(channel: Any, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare)."""
    ok = channel.queue_declare(queue=queue, passive=True)
    return int(ok.message_count)


def unacked_keys(node: RedisNode) -> list[bytes]:
    """The unacked-delivery hashes left in Redis (empty ones do not exist)."""
    with raw(node) as client:
        return list(client.scan_iter(match=f"{KEYS}u:*"))


class Child:
    """``redis_consumer_child.py`` in a process of its own: its pid, its output, its stdin."""

    def __init__(self, node: RedisNode, queue: str, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), node.url(), PREFIX, queue, str(count), str(VT)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pid = self.proc.pid
        self.output: list[str] = []
        self._lines: queue_mod.Queue[str] = queue_mod.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())

    def expect(self, prefix: str, seconds: float = 20) -> str:
        """The next output line starting with ``prefix`` (fails on exit or timeout)."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"child never said {prefix!r}: {self.output}"
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue_mod.Empty:
                assert self.proc.poll() is None, f"child exited: {self.output}"
                continue
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def close(self) -> None:
        """Kill the child if it still runs and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it is stopped
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def child_consumer(node: RedisNode, queue: str, count: int) -> Iterator[Child]:
    """A child process holding ``count`` unacked messages of ``queue``; always reaped."""
    child = Child(node, queue, count)
    try:
        line = child.expect("holding ")
        assert line == f"holding {count} redelivered=0 pid={child.pid}", child.output
        yield child
    finally:
        child.close()


def lease_expiry_ms(node: RedisNode, pid: int) -> float:
    """When the lease of process ``pid``'s connection runs out (Redis server time, ms)."""
    with raw(node) as client:
        leases = client.zrange(f"{KEYS}leases", 0, -1, withscores=True)
    mine = [score for member, score in leases if f":{pid}:" in member.decode()]
    assert len(mine) == 1, leases
    return float(mine[0])


# -- 1. a killed consumer's messages come back after the visibility timeout ----------------


def test_sigkilled_consumer_loses_nothing_and_its_messages_return_after_the_lease(
    redis_nodes: Nodes,
) -> None:
    a, _ = redis_nodes
    queue, total = "kill-test", 100
    publish(a.url(), queue, total)

    conn = Connection(a.url(), transport_options=options())
    received: list[Any] = []
    firsts: list[float] = []

    def on_message(message: Any) -> None:
        if not firsts:
            firsts.append(time.time())
        received.append(message)

    try:
        channel = conn.channel()
        channel.basic_qos(0, 200, False)
        with child_consumer(a, queue, total) as child:
            assert ready_count(channel, queue) == 0  # the child holds them all, unacked
            channel.basic_consume(queue=queue, callback=on_message)
            child.signal(signal.SIGKILL)
            child.proc.wait(10)
            killed_at, killed_wall = time.monotonic(), time.time()
        # The child renewed its lease (heartbeat thread, every 0.25 s) until it died.
        expiry_ms = lease_expiry_ms(a, child.pid)
        last_renewal = expiry_ms / 1000 - VT
        assert received == []  # nothing before the lease ran out

        drain_until(
            conn, lambda: len(received) >= total, VT + 8, message="not every message came back"
        )
        all_back = time.monotonic() - killed_at
        drain_for(conn, 0.5)  # anything more would be a duplicate
        for message in received:
            channel.basic_ack(message.delivery_tag)

        seqs = collections.Counter(int(m.body) for m in received)
        lost = set(range(total)) - seqs.keys()
        duplicates = sum(n - 1 for n in seqs.values())
        not_flagged = [m for m in received if not m.delivery_info["redelivered"]]
        first_after_kill = firsts[0] - killed_wall if firsts else float("nan")
        first_after_renewal = firsts[0] - last_renewal if firsts else float("nan")
        print(
            f"\nredis kill test: {total} unacked, redelivered {len(received)}, lost {len(lost)}, "
            f"duplicates {duplicates}, {all_back:.2f}s after kill (first after "
            f"{first_after_kill:.2f}s; {first_after_renewal:.2f}s after the child's last lease "
            f"renewal, visibility_timeout={VT:g}s)"
        )
        assert not lost, f"lost {sorted(lost)}"
        assert duplicates == 0
        assert not_flagged == []
        # Not before the lease could have expired (same wall clock as Redis' TIME) ...
        assert firsts[0] * 1000 >= expiry_ms - 20, (firsts[0] * 1000, expiry_ms)
        assert first_after_renewal >= VT - 0.05
        # ... and soon after it did (any connection's heartbeat sweeps dead leases).
        assert all_back < VT + 1.5
        assert ready_count(channel, queue) == 0
    finally:
        conn.close()
    assert unacked_keys(a) == []
    with raw(a) as client:
        assert client.zcard(f"{KEYS}leases") == 0  # the dead child's lease was swept


def test_stalled_consumer_loses_its_lease_and_its_late_acks_are_refused(
    redis_nodes: Nodes,
) -> None:
    """SIGSTOP past the visibility timeout: redelivered elsewhere, never also acked."""
    a, _ = redis_nodes
    queue, total = "stall-test", 100
    publish(a.url(), queue, total)
    conn = Connection(a.url(), transport_options=options())
    received: list[Any] = []
    try:
        channel = conn.channel()
        channel.basic_qos(0, 200, False)
        channel.basic_consume(queue=queue, callback=received.append)
        with child_consumer(a, queue, total) as child:
            child.signal(signal.SIGSTOP)  # a frozen process: no heartbeat, no drain
            stopped_at = time.monotonic()
            drain_until(
                conn, lambda: len(received) >= total, VT + 8, message="not every message came back"
            )
            back = time.monotonic() - stopped_at
            for message in received:
                channel.basic_ack(message.delivery_tag)
            child.signal(signal.SIGCONT)
            child.send("ack")
            verdict = child.expect("acked ")
            drain_for(conn, 0.5)  # nothing may come back
            child.send("exit")
            assert child.proc.wait(10) == 0, child.output
        seqs = collections.Counter(int(m.body) for m in received)
        print(
            f"\nredis stalled consumer: {total} unacked, redelivered {len(received)} "
            f"({len(seqs)} distinct) {back:.2f}s after SIGSTOP; after SIGCONT the child's "
            f"late acks: {verdict}"
        )
        assert sorted(seqs) == list(range(total)) and len(received) == total
        assert all(m.delivery_info["redelivered"] for m in received)
        assert VT - 0.3 < back < VT + 1.5
        assert verdict.startswith(f"acked 0 refused {total} RecoverableConnectionError"), verdict
        assert ready_count(channel, queue) == 0
    finally:
        conn.close()
    assert unacked_keys(a) == []


def test_basic_get_poller_gets_a_dead_consumers_messages_back(redis_nodes: Nodes) -> None:
    a, _ = redis_nodes
    queue, total = "get-test", 5
    publish(a.url(), queue, total)
    # Holds every message, then falls silent: no heartbeat thread, never called again.
    dead = Connection(a.url(), transport_options=options(), heartbeat_thread=False)
    poller = Connection(a.url(), transport_options=options(), heartbeat_thread=False)
    try:
        dead_channel = dead.channel()
        held = [dead_channel.basic_get(queue=queue) for _ in range(total)]
        assert all(m is not None for m in held)
        channel = poller.channel()  # connects (and sweeps) while the dead lease is still valid
        got: list[Any] = []
        deadline = time.monotonic() + VT + 1.5
        while len(got) < total and time.monotonic() < deadline:
            if (message := channel.basic_get(queue=queue)) is not None:
                got.append(message)
                channel.basic_ack(message.delivery_tag)
            else:
                time.sleep(0.05)
        print(f"\nbasic_get poller: {len(got)} of {total} back {VT + 1.5:g} s after the lease")
        assert len(got) == total
    finally:
        poller.close()
        dead.close()


# -- 2. a live consumer busy in user code keeps its messages ------------------------------


@pytest.mark.parametrize("heartbeat", [0, 1], ids=["heartbeat=0", "heartbeat=1"])
def test_busy_consumer_keeps_its_unacked_messages_past_the_visibility_timeout(
    redis_nodes: Nodes, heartbeat: float
) -> None:
    a, _ = redis_nodes
    queue, total, busy = "busy-test", 10, 5.0
    publish(a.url(), queue, total)
    ready, stop = threading.Event(), threading.Event()
    stolen: list[Any] = []
    errors: list[BaseException] = []

    def second_consumer() -> None:  # owns its connection: created and used in this thread
        try:
            with Connection(a.url(), transport_options=options()) as other:
                ch = other.channel()
                ch.basic_consume(queue=queue, callback=stolen.append)
                ready.set()
                drain_until(other, stop.is_set, busy + 10)
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    conn = Connection(a.url(), heartbeat=heartbeat, transport_options=options())
    try:
        channel = conn.channel()
        channel.basic_qos(0, total, False)
        held: list[Any] = []
        channel.basic_consume(queue=queue, callback=held.append)
        drain_until(conn, lambda: len(held) >= total, 5)
        assert len(held) == total

        thread = threading.Thread(target=second_consumer, daemon=True)
        thread.start()
        assert ready.wait(10)
        time.sleep(busy)  # user code: no library call on `conn` for 2.5 visibility timeouts
        stop.set()
        thread.join(10)
        assert not thread.is_alive() and errors == []
        print(
            f"\nbusy consumer (heartbeat={heartbeat}): held {total} unacked for {busy:g}s with "
            f"visibility_timeout={VT:g}s; the other consumer got {len(stolen)}"
        )
        assert stolen == []
        for message in held:  # the lease is still ours: acks are honoured
            channel.basic_ack(message.delivery_tag)
        assert ready_count(channel, queue) == 0
    finally:
        conn.close()
    assert unacked_keys(a) == []


def test_idle_consumer_does_not_poll_redis(redis_nodes: Nodes) -> None:
    a, _ = redis_nodes
    queue, idle = "idle-test", 2.0
    conn = Connection(a.url(), transport_options=options(300), heartbeat_thread=False)
    try:
        channel = conn.channel()
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        channel.basic_consume(queue=queue, callback=lambda m: None)
        with raw(a) as client:
            client.config_resetstat()
            drain_for(conn, idle)
            calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        print(f"\nidle redis consumer: {calls} script calls in {idle:g} s (lease renewal 75 s)")
        assert calls <= 2, f"{calls} script calls in {idle:g} s of idling"
    finally:
        conn.close()


# -- 3. a clean close returns unacked messages at once ---------------------------------------


@pytest.mark.parametrize("closing", ["connection", "channel"])
def test_clean_close_returns_unacked_messages_at_once(redis_nodes: Nodes, closing: str) -> None:
    a, _ = redis_nodes
    queue, total, vt = "close-test", 10, 60.0
    publish(a.url(), queue, total, visibility_timeout=vt)
    first = Connection(a.url(), transport_options=options(vt))
    try:
        channel = first.channel()
        held: list[Any] = []
        channel.basic_consume(queue=queue, callback=held.append)
        drain_until(first, lambda: len(held) >= total, 5)
        assert len(held) == total
        start = time.monotonic()
        if closing == "connection":
            first.close()
        else:
            channel.close()
            assert first.connected
    finally:
        closed_at = time.monotonic()
        first.close()

    with Connection(a.url(), transport_options=options(vt)) as second:
        ch = second.channel()
        got = [m for _ in range(total + 1) if (m := ch.basic_get(queue=queue)) is not None]
        elapsed = time.monotonic() - start
        for message in got:
            ch.basic_ack(message.delivery_tag)
        print(
            f"\nclean {closing} close: {len(got)} of {total} unacked back in "
            f"{elapsed * 1000:.1f} ms (visibility_timeout={vt:g}s)"
        )
        assert [int(m.body) for m in got] == list(range(total))  # in their original order
        assert all(m.delivery_info["redelivered"] for m in got)
        assert closed_at - start < 1.0 and elapsed < 2.0
        assert ready_count(ch, queue) == 0
    assert unacked_keys(a) == []


# -- 4. failover ---------------------------------------------------------------------------


def test_kill_minus_9_during_autoretry_fails_over_to_the_other_node(redis_nodes: Nodes) -> None:
    a, b = redis_nodes
    queue = "failover-test"
    conn = Connection(f"{a.url()};{b.url()}", transport_options=options())
    try:
        elapsed, channel = publish_across_a_kill(conn, queue, a.port, b.port, a.kill)
        print(f"\nredis failover after kill -9: {elapsed * 1000:.1f} ms")
        assert elapsed < 2.0
        got = channel.basic_get(queue=queue, no_ack=True)
        assert got is not None and got.body == b"after"
    finally:
        conn.close()


def test_refused_first_url_connects_to_the_next(redis_nodes: Nodes) -> None:
    _, b = redis_nodes
    dead = free_port()
    conn = Connection(f"redis://127.0.0.1:{dead}/0;{b.url()}", transport_options=options())
    try:
        start = time.monotonic()
        conn.connect()
        elapsed = time.monotonic() - start
        assert conn.connected and conn.host == f"127.0.0.1:{b.port}"
        print(f"\nredis 'dead;live' connect: {elapsed * 1000:.1f} ms")
        assert elapsed < 2.0
    finally:
        conn.close()


# -- 5. a blackholed Redis is detected; ensure_connection fails over -------------------------


def test_blackholed_redis_is_detected_then_ensure_connection_fails_over(
    redis_nodes: Nodes, fault_proxy: Callable[..., FaultProxy]
) -> None:
    a, b = redis_nodes
    proxy = fault_proxy(a.port)
    closed: list[BaseException | None] = []
    conn = Connection(
        f"redis://127.0.0.1:{proxy.port}/0;{b.url()}",
        heartbeat=1,
        transport_options={"key_prefix": PREFIX},
        on_close=lambda c, exc: closed.append(exc),
    )
    try:
        channel = conn.channel()
        channel.queue_declare(queue="blackhole-test", durable=True, auto_delete=False)
        channel.basic_consume(queue="blackhole-test", callback=lambda m: None)
        assert conn.host == f"127.0.0.1:{proxy.port}"
        proxy.blackhole()
        start = time.monotonic()
        with pytest.raises(RecoverableConnectionError) as info:
            conn.drain_events(timeout=20)
        detected = time.monotonic() - start
        # With heartbeats on, a command unanswered for two heartbeats (here the
        # consumer's delivery call) is a HeartbeatTimeout, whichever command it was.
        assert type(info.value) is HeartbeatTimeout, repr(info.value)
        assert 1.5 < detected < 4.0
        assert len(closed) == 1 and closed[0] is info.value

        start = time.monotonic()
        conn.ensure_connection(max_retries=2, interval_start=0.1)
        failover = time.monotonic() - start
        assert conn.connected and conn.host == f"127.0.0.1:{b.port}"
        print(
            f"\nredis blackhole detected after {detected:.2f} s at heartbeat=1 "
            f"({type(info.value).__name__}: {info.value}); failover {failover * 1000:.1f} ms"
        )
        assert failover < 1.0
    finally:
        conn.close()


# -- 6. a ConsumerLoop comes back by itself after a Redis restart ---------------------------


def test_consumer_loop_recovers_after_redis_restart_that_lost_every_key(
    redis_nodes: Nodes,
) -> None:
    a, _ = redis_nodes
    name = "restart-test"
    queue = Queue(name, Exchange(name, "direct", durable=True), routing_key="k", durable=True)
    received: list[int] = []
    revived = threading.Event()

    def handle(body: Any, message: Any) -> None:
        received.append(int(body))
        message.ack()

    def publish_seqs(seqs: range) -> None:
        # Through the exchange, without declaring: it must exist already (routed, not dropped).
        with Connection(a.url(), transport_options=options()) as producer:
            channel = producer.channel()
            channel.exchange_declare(name, "direct", passive=True)
            for seq in seqs:
                channel.basic_publish(
                    channel.prepare_message(str(seq).encode()), exchange=name, routing_key="k"
                )

    conn = Connection(a.url(), connect_timeout=2, transport_options=options())
    loop = ConsumerLoop(
        conn,
        lambda channel: [Consumer(channel, queues=[queue], callbacks=[handle], prefetch_count=10)],
        drain_timeout=0.5,
        on_revive=lambda c: revived.set(),
    )
    runner = threading.Thread(target=loop.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: loop.consumers or not runner.is_alive(), 10)
        assert runner.is_alive(), "the loop never started"
        publish_seqs(range(5))
        wait_until(lambda: len(received) >= 5, 10, message="the first 5 messages were not consumed")

        a.kill()
        killed_at = time.monotonic()
        a.start()  # empty: no persistence
        with raw(a) as client:
            assert client.dbsize() == 0
        assert revived.wait(15), "the loop did not reconnect"
        back = time.monotonic() - killed_at
        with raw(a) as client:  # declared again by the loop's recovery record
            assert client.hexists(f"{KEYS}queues", name)
            assert client.hexists(f"{KEYS}exchanges", name)

        publish_seqs(range(5, 10))
        wait_until(
            lambda: len(received) >= 10,
            10,
            message="the 5 messages after the restart were not consumed",
        )
        resumed = time.monotonic() - killed_at
    finally:
        loop.stop()
        runner.join(10)
        conn.close()
    print(
        f"\nredis restart: consumer loop reconnected {back:.2f} s after the kill "
        f"(reconnects {loop.reconnects}); consuming again after {resumed:.2f} s"
    )
    assert not runner.is_alive()
    assert received == list(range(10))
    assert loop.reconnects == 1
