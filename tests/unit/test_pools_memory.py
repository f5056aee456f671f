"""ConnectionPool, ChannelPool, the pool groups and fork safety over ``memory://``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

import pytest

import pools
from broker import Connection
from broker.errors import (
    ChannelLimitExceeded,
    ConfigurationError,
    ConnectionLimitExceeded,
    LimitExceeded,
    NotFound,
    RecoverableConnectionError,
)
from pools import ChannelPool, ConnectionPool, PooledChannel, PooledConnection, ResourceReleased
from pools.connection import VERIFY_AFTER
from tests.support.fake_pools import FakeClock, FakeGates


@pytest.fixture
def connection() -> Iterator[Connection]:
    conn = Connection("memory://")
    yield conn
    conn.close()


@pytest.fixture(autouse=True)
def _fresh_groups() -> Iterator[None]:
    yield
    pools.reset()
    pools.set_limit(pools.DEFAULT_LIMIT)


def publish_and_get(conn: object, queue: str, body: bytes = b"hello") -> bytes:
    """Declare ``queue``, publish ``body`` to it and read it back, all on ``conn``."""
    channel = conn.default_channel  # type: ignore[attr-defined]
    channel.queue_declare(queue=queue, auto_delete=False)
    channel.basic_publish(channel.prepare_message(body), routing_key=queue)
    message = channel.basic_get(queue, no_ack=True)
    assert message is not None
    return bytes(message.body)


# -- the kombu examples -------------------------------------------------------------


def test_channel_pool_limit_as_in_the_kombu_docs(connection: Connection) -> None:
    pool = connection.ChannelPool(2)
    c1 = pool.acquire()
    c2 = pool.acquire()
    with pytest.raises(ChannelLimitExceeded):
        pool.acquire()
    c1.release()
    c3 = pool.acquire()
    assert c3.resource is not c2.resource
    assert isinstance(c3, PooledChannel)


def test_connection_pool_limit_as_in_the_kombu_docs(connection: Connection) -> None:
    pool = connection.Pool(2)
    c1 = pool.acquire()
    c2 = pool.acquire()
    with pytest.raises(ConnectionLimitExceeded):
        pool.acquire()
    c1.release()
    c3 = pool.acquire()
    assert c3.resource is not c2.resource
    assert isinstance(c3, PooledConnection)


@pytest.mark.parametrize("factory", ["Pool", "ChannelPool"])
def test_blocking_acquire_times_out_after_the_timeout(connection: Connection, factory: str) -> None:
    clock = FakeClock()
    gates = FakeGates(clock)  # a wait moves the fake clock on instead of sleeping
    pool = getattr(connection, factory)(1, clock=clock, gate_factory=gates)
    pool.acquire()
    with pytest.raises(pool.LimitExceeded, match=r"waited 0\.2 s"):
        pool.acquire(block=True, timeout=0.2)
    assert gates.sleeps == [pytest.approx(0.2)]
    assert clock.now == pytest.approx(1000.2)


def test_a_producer_pool_shares_one_deadline_between_its_two_waits(connection: Connection) -> None:
    clock = FakeClock()
    gates = FakeGates(clock)
    connections = ConnectionPool(connection, limit=1, clock=clock, gate_factory=gates)
    producers = pools.ProducerPool(connections, limit=1, clock=clock, gate_factory=gates)
    held = producers.acquire()

    def a_connection_comes_back_after_a_quarter_second() -> None:
        clock.advance(0.25)
        held.connection.release()

    gates.meanwhile = [a_connection_comes_back_after_a_quarter_second]
    with pytest.raises(LimitExceeded, match=r"ProducerPool .* \(waited 0\.75 s\)"):
        producers.acquire(block=True, timeout=1.0)  # then no producer for the remaining 0.75 s
    assert gates.sleeps == [1.0, 0.75]
    assert clock.now == 1001.0
    assert connections.in_use == 0  # the connection borrowed for it went back


# -- connection pools -----------------------------------------------------------------


def test_pooled_connections_are_lazy_clones(connection: Connection) -> None:
    pool = ConnectionPool(connection, limit=2)
    with pool.acquire() as conn:
        assert conn.resource is not connection
        assert conn.identity == connection.identity
        assert not conn.connected  # nothing opened until first use
        assert publish_and_get(conn, "q-lazy") == b"hello"
        assert conn.connected
    assert not connection.connected  # the template is never connected by the pool
    assert (pool.in_use, pool.idle) == (0, 1)


def test_preload_really_opens_connections(connection: Connection) -> None:
    pool = connection.Pool(3, preload=2)
    assert (pool.in_use, pool.idle) == (0, 2)
    preloaded = [pool.acquire(), pool.acquire()]
    assert all(conn.connected for conn in preloaded)


def test_a_connection_error_inside_with_collects_it_and_frees_the_slot(
    connection: Connection,
) -> None:
    pool = connection.Pool(1)
    with pytest.raises(RecoverableConnectionError), pool.acquire() as conn:
        conn.default_channel  # noqa: B018 - connect
        broken = conn.resource
        raise RecoverableConnectionError("connection reset by peer")
    assert not broken.connected  # collected, no handshake
    assert (pool.in_use, pool.idle) == (0, 0)
    with pool.acquire() as conn:
        assert conn.resource is not broken


def test_an_idle_connection_found_dead_on_checkout_is_replaced(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    pool = connection.Pool(2, clock=clock)
    with pool.acquire() as conn:
        conn.default_channel  # noqa: B018 - connect
        dead = conn.resource
    # Its socket died underneath: still "connected", but the liveness probe says no.
    monkeypatch.setattr(dead, "verify", lambda: False)
    clock.now += VERIFY_AFTER
    with pool.acquire() as conn:
        assert conn.resource is not dead
        assert publish_and_get(conn, "q-replaced") == b"hello"
    assert not dead.connected
    assert (pool.in_use, pool.idle) == (0, 1)


def test_a_connection_returned_moments_ago_is_not_probed(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    pool = connection.Pool(2, clock=clock)
    with pool.acquire() as conn:
        conn.default_channel  # noqa: B018 - connect
        warm = conn.resource
    probes: list[int] = []
    monkeypatch.setattr(warm, "verify", lambda: probes.append(1) or True)
    clock.now += VERIFY_AFTER / 2
    with pool.acquire() as conn:
        assert conn.resource is warm
    assert probes == []
    clock.now += VERIFY_AFTER
    with pool.acquire() as conn:
        assert conn.resource is warm
    assert probes == [1]


def test_acquire_channel_yields_connection_and_default_channel(connection: Connection) -> None:
    pool = connection.Pool(2)
    with pool.acquire_channel() as (conn, channel):
        assert channel is conn.default_channel
        channel.queue_declare(queue="q-ac", auto_delete=False)
    assert (pool.in_use, pool.idle) == (0, 1)
    with pytest.raises(RecoverableConnectionError), pool.acquire_channel():
        raise RecoverableConnectionError("lost")
    assert (pool.in_use, pool.idle) == (0, 0)


def test_release_and_close_on_the_lease_return_to_the_pool(connection: Connection) -> None:
    pool = connection.Pool(2)
    conn = pool.acquire()
    conn.release()  # kombu's spelling: back to the pool, not closed
    conn.release()
    pool.release(conn)
    assert (pool.in_use, pool.idle) == (0, 1)


def test_repr_and_logs_never_show_a_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="broker.pool")
    template = Connection("amqp://user:s3cret@127.0.0.1:1//")
    pool = template.Pool(2)
    lease = pool.acquire()
    lease.discard()
    pool.resize(3)
    pool.force_close_all()
    pool.close()
    assert repr(pool) == "<ConnectionPool limit=3 in_use=0 idle=0 waiting=0 closed>"
    assert "s3cret" not in repr(lease)
    assert caplog.records and "s3cret" not in caplog.text


# -- channel pools ----------------------------------------------------------------------


def test_a_channel_closed_by_the_broker_is_not_handed_out_again(connection: Connection) -> None:
    pool = connection.ChannelPool(2)
    with pytest.raises(NotFound), pool.acquire() as channel:
        closed = channel.resource
        channel.queue_declare(queue="no-such-queue", passive=True)
    assert not closed.is_open
    with pool.acquire() as channel:
        assert channel.resource is not closed and channel.is_open


def test_a_channel_closed_while_the_error_was_swallowed_is_dropped_on_return(
    connection: Connection,
) -> None:
    pool = connection.ChannelPool(2)
    with pool.acquire() as channel:
        closed = channel.resource
        with pytest.raises(NotFound):
            channel.queue_declare(queue="no-such-queue", passive=True)
    assert (pool.in_use, pool.idle) == (0, 0)
    with pool.acquire() as channel:
        assert channel.resource is not closed


def test_a_pooled_channel_forwards_what_is_used_per_message_until_released(
    connection: Connection,
) -> None:
    pool = connection.ChannelPool(1)
    lease = pool.acquire()
    channel = lease.resource
    assert lease.is_open and lease.prepare_message == channel.prepare_message
    assert lease.basic_publish == channel.basic_publish and lease.basic_ack == channel.basic_ack
    lease.release()
    for name in ("is_open", "prepare_message", "basic_publish", "basic_ack", "queue_declare"):
        with pytest.raises(ResourceReleased, match=name):
            getattr(lease, name)
    pool.close()


def test_channel_pool_preload_and_reuse(connection: Connection) -> None:
    pool = ChannelPool(connection, limit=3, preload=2)
    assert pool.idle == 2 and connection.connected
    with pool.acquire() as channel:
        channel.queue_declare(queue="q-ch", auto_delete=False)
        channel.basic_publish(channel.prepare_message(b"x"), routing_key="q-ch")
        reused = channel.resource
    with pool.acquire() as channel:
        assert channel.resource is reused
        assert channel.basic_get("q-ch", no_ack=True).body == b"x"
    pool.close()
    assert not reused.is_open


def test_channel_pool_recovers_when_its_connection_dies(connection: Connection) -> None:
    pool = connection.ChannelPool(2)
    with pool.acquire() as channel:
        old = channel.resource
    connection.collect()  # the link is gone: every channel on it is dead
    with pool.acquire() as channel:
        assert channel.resource is not old and channel.is_open
        channel.queue_declare(queue="q-recover", auto_delete=False)


# -- groups ------------------------------------------------------------------------------


def test_groups_are_keyed_by_connection_identity(connection: Connection) -> None:
    pool = pools.connections[connection]
    assert isinstance(pool, ConnectionPool)
    assert pools.connections[Connection("memory://")] is pool
    assert pools.connections[Connection("memory://localhost/other")] is not pool
    assert pool.limit == pools.get_limit() == 10
    assert pools.producers[connection].connections is pool


def test_set_limit_changes_new_and_existing_group_pools(connection: Connection) -> None:
    pool = pools.connections[connection]
    assert pools.set_limit(4) == 4
    assert pool.limit == 4 and pools.get_limit() == 4
    assert pools.connections[Connection("memory:///x")].limit == 4
    with pytest.raises(ConfigurationError, match="limit"):
        pools.set_limit(0)


def test_reset_closes_every_group_pool(connection: Connection) -> None:
    pool = pools.connections[connection]
    with pool.acquire() as conn:
        conn.default_channel  # noqa: B018
    pools.reset()
    assert pool.is_closed
    fresh = pools.connections[connection]
    assert fresh is not pool and not fresh.is_closed


def test_a_closed_group_pool_is_replaced_not_returned(connection: Connection) -> None:
    pool = pools.connections[connection]
    pool.close()
    assert pools.connections[connection] is not pool


def test_producer_pool_publishes_through_a_pooled_connection(connection: Connection) -> None:
    with pools.connections[connection].acquire_channel() as (_, channel):
        channel.queue_declare(queue="q-prod", auto_delete=False)
    producers = pools.producers[connection]
    with producers.acquire(block=True) as producer:
        producer.publish({"n": 1}, routing_key="q-prod")
        assert pools.connections[connection].in_use == 1
        first = producer.resource
    assert pools.connections[connection].in_use == 0
    with producers.acquire(block=True) as producer:
        assert producer.resource is first  # reused, on the same connection
        producer.publish({"n": 2}, routing_key="q-prod")
    with pools.connections[connection].acquire() as conn:
        channel = conn.default_channel
        bodies = [channel.basic_get("q-prod", no_ack=True).body for _ in range(2)]
    assert bodies == [b'{"n": 1}', b'{"n": 2}']


def test_producer_pool_discards_a_broken_connection(connection: Connection) -> None:
    producers = pools.producers[connection]
    with pytest.raises(RecoverableConnectionError), producers.acquire() as producer:
        conn = producer.connection.resource
        raise RecoverableConnectionError("lost")
    assert pools.connections[connection].idle == 0
    with producers.acquire() as producer:
        assert producer.connection.resource is not conn
        producer.publish(b"after", routing_key="q-prod2")


def test_producer_pool_drops_a_channel_the_broker_closed(connection: Connection) -> None:
    producers = pools.producers[connection]
    with pytest.raises(NotFound), producers.acquire() as producer:
        producer.publish(b"lost", exchange="no-such-exchange", routing_key="k")
    with pools.connections[connection].acquire_channel() as (_, channel):
        channel.queue_declare(queue="q-after-404", auto_delete=False)
    with producers.acquire() as producer:  # same producer, revived on a working channel
        producer.publish(b"delivered", routing_key="q-after-404")
    with pools.connections[connection].acquire_channel() as (_, channel):
        assert channel.basic_get("q-after-404", no_ack=True).body == b"delivered"
    assert producers.idle == 1


def _publish_on(
    target: Connection, connections: ConnectionPool, producers: pools.ProducerPool
) -> object:
    """Publish once through ``producers`` riding ``target`` (the other connection is held)."""
    first, second = connections.acquire(), connections.acquire()
    free, held = (first, second) if first.resource is target else (second, first)
    assert free.resource is target
    free.release()
    with held, producers.acquire() as producer:
        assert producer.connection.resource is target
        producer.publish(b"x", routing_key="q-parked")
        return producer.channel


def test_a_confirm_channel_stays_with_its_connection_for_the_next_producer() -> None:
    confirming = Connection("memory://", transport_options={"confirm_publish": True})
    connections = pools.connections[confirming]
    with connections.acquire_channel() as (_, channel):
        channel.queue_declare(queue="q-parked", auto_delete=False)
    first, second = connections.acquire(), connections.acquire()
    a, b = first.resource, second.resource
    first.release()
    second.release()
    producers = pools.producers[confirming]
    # One producer rides A, then B, then A again: each time it takes over the
    # confirm channel the last producer there left.
    used = [_publish_on(conn, connections, producers) for conn in (a, b, a, b)]
    assert producers.idle == 1 and producers.in_use == 0
    assert used[2] is used[0] and used[3] is used[1]  # no new channel.open, no confirm.select
    assert used[0] is not used[1]
    with connections.acquire_channel() as (_, channel):
        assert channel.queue_declare(queue="q-parked", passive=True).message_count == 4
    producers.close()
    assert not any(channel.is_open for channel in used)  # the pool closed what it kept
    confirming.close()


def test_a_broken_confirm_channel_is_not_left_for_the_next_producer(connection: Connection) -> None:
    confirming = Connection("memory://", transport_options={"confirm_publish": True})
    producers = pools.producers[confirming]
    with pytest.raises(NotFound), producers.acquire() as producer:
        broken = producer.channel
        producer.publish(b"lost", exchange="no-such-exchange", routing_key="k")
    assert not broken.is_open  # the broker closed it (404)
    with producers.acquire() as producer:
        producer.publish(b"kept", routing_key="")
        assert producer.channel is not broken and producer.channel.is_open
    producers.close()
    confirming.close()


def test_a_producer_pool_without_confirms_parks_nothing(connection: Connection) -> None:
    producers = pools.producers[connection]
    with producers.acquire() as producer:
        producer.publish(b"x", routing_key="")
        default = producer.connection.default_channel
        assert producer.channel is default  # plain producers ride the default channel
    producers.close()
    assert default.is_open  # not the producer pool's to close


# -- threads -----------------------------------------------------------------------------


def test_many_threads_never_exceed_the_limit(connection: Connection) -> None:
    pool = connection.Pool(3)
    lock = threading.Lock()
    out, peak = 0, 0
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal out, peak
        try:
            for i in range(300):
                with pool.acquire(block=True, timeout=10):
                    with lock:
                        out += 1
                        peak = max(peak, out)
                    if i % 50 == 0:
                        os.sched_yield()
                    with lock:
                        out -= 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert peak <= 3
    assert (pool.in_use, pool.waiting) == (0, 0)


# -- fork --------------------------------------------------------------------------------


def _child(check: object) -> None:
    """Run ``check()`` in a forked child and exit with its status (never return)."""
    code = 1
    try:
        code = check()  # type: ignore[operator]
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        os._exit(code)


def _run_in_child(check: object) -> int:
    pid = os.fork()
    if pid == 0:
        _child(check)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_the_child_gets_its_own_connections(connection: Connection) -> None:
    pool = pools.connections[connection]
    idle, held = pool.acquire(), pool.acquire()  # one goes back, one stays borrowed
    parent_conns = {idle.resource, held.resource}
    for lease in (idle, held):
        assert publish_and_get(lease, "q-fork", b"parent") == b"parent"
    idle.release()

    def check() -> int:
        child_pool = pools.connections[connection]
        if child_pool is not pool or child_pool.is_closed:
            return 10  # the same pool object, reset, never "closed"
        if (child_pool.in_use, child_pool.idle) != (0, 0):
            return 11
        with child_pool.acquire() as conn:
            if conn.resource in parent_conns or conn.connected:
                return 12  # must be a fresh connection of the child's own
            if publish_and_get(conn, "q-fork-child", b"child") != b"child":
                return 13
        held.release()  # an inherited lease: forgotten, never closed from here
        return 0 if (child_pool.in_use, child_pool.idle) == (0, 1) else 14

    assert _run_in_child(check) == 0
    assert (pool.in_use, pool.idle) == (1, 1)  # the parent is undisturbed
    held.release()
    both = [pool.acquire(), pool.acquire()]
    assert {lease.resource for lease in both} == parent_conns
    for lease in both:
        assert publish_and_get(lease, "q-fork", b"still works") == b"still works"
        lease.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_a_channel_pool_opens_channels_on_a_connection_of_its_own(
    connection: Connection,
) -> None:
    pool = connection.ChannelPool(2, preload=1)

    def check() -> int:
        with pool.acquire() as channel:
            if pool.connection is connection:
                return 20  # the parent's connection object still holds its socket
            channel.queue_declare(queue="q-fork-ch", auto_delete=False)
        pool.close()
        return 0

    assert _run_in_child(check) == 0
    assert pool.connection is connection and pool.idle == 1
    with pool.acquire() as channel:
        channel.queue_declare(queue="q-fork-parent", auto_delete=False)


# -- the example ---------------------------------------------------------------------------


def test_the_web_worker_example_runs_on_memory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy
    from pathlib import Path

    monkeypatch.delenv("BROKER_URL", raising=False)
    example = Path(__file__).resolve().parents[2] / "examples" / "pools_web_worker.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "40 requests accepted, 40 events queued" in out
    assert "limit=8 in_use=0" in out
    if hasattr(os, "fork"):
        assert "the worker opened its own connection" in out
