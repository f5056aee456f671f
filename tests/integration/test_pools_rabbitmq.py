"""Connection and channel pools against the real RabbitMQ on 127.0.0.1:5672."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pools
from broker import Connection, Producer
from broker.errors import NotFound, RecoverableConnectionError
from tests.support.faultproxy import FaultProxy
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT

pytestmark = pytest.mark.broker

THREADS = 64
ROUNDS = 2_000


@pytest.fixture(autouse=True)
def _fresh_groups() -> Iterator[None]:
    yield
    pools.reset()


def message_count(channel: Any, queue: str, expected: int, timeout: float = 5.0) -> int:
    """The queue's message count, polled until it reaches ``expected`` or ``timeout``.

    Publishes made on other connections may still be in flight.
    """
    deadline = time.monotonic() + timeout
    while True:
        declared = channel.queue_declare(queue=queue, passive=True)
        count = declared.message_count if declared is not None else -1
        if count >= expected or time.monotonic() > deadline:
            return int(count)
        time.sleep(0.02)


class Borrowed:
    """Counts leases out at once and remembers the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def hammer(pool: Any, use: Callable[[Any], None] | None = None) -> tuple[int, dict[str, int]]:
    """THREADS threads x ROUNDS acquire/release with random errors raised inside ``with``.

    Returns the peak number of leases out at once and how often each error was raised.
    """
    borrowed = Borrowed()
    raised = {"ValueError": 0, "connection": 0}
    counts_lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(ROUNDS):
                roll = rng.random()
                try:
                    with pool.acquire(block=True, timeout=30) as lease, borrowed:
                        if roll > 0.9:
                            time.sleep(0)  # let others run while this lease is out
                        if use is not None and roll > 0.999:
                            use(lease)
                        if roll < 0.05:
                            raise ValueError("an application error: the item is fine")
                        if roll < 0.0515:
                            raise RecoverableConnectionError("simulated: connection lost")
                except ValueError:
                    with counts_lock:
                        raised["ValueError"] += 1
                except RecoverableConnectionError:
                    with counts_lock:
                        raised["connection"] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"deadlock? {pool!r}"
    assert not failures, failures[:3]
    return borrowed.peak, raised


def test_connection_pool_under_64_threads(rabbitmq_url: str, unique_name: str) -> None:
    published = 0
    count_lock = threading.Lock()

    def publish(conn: Any) -> None:
        # Confirmed: some connections are torn down abruptly later (the
        # simulated connection errors), and only a confirmed publish is sure
        # to have reached the queue.
        nonlocal published
        with Producer(conn, confirm_publish=True) as producer:
            producer.publish(b"x", routing_key=unique_name)
        with count_lock:
            published += 1

    with Connection(rabbitmq_url) as admin:
        admin.default_channel.queue_declare(queue=unique_name, auto_delete=False)
        pool = admin.Pool(8, preload=4)
        try:
            started = time.monotonic()
            peak, raised = hammer(pool, use=publish)
            elapsed = time.monotonic() - started
            print(
                f"\nConnectionPool(8): peak borrowed {peak}, {THREADS * ROUNDS} checkouts "
                f"in {elapsed:.2f} s, raised {raised}, published {published}, {pool!r}"
            )
            assert peak <= 8
            assert pool.in_use == 0 and pool.waiting == 0
            assert pool.idle <= 8
            assert raised["connection"] > 0 and raised["ValueError"] > 0
            assert message_count(admin.default_channel, unique_name, published) == published
        finally:
            pool.close()
            admin.default_channel.queue_delete(queue=unique_name)


def test_channel_pool_under_64_threads(rabbitmq_url: str) -> None:
    with Connection(rabbitmq_url) as conn:
        pool = conn.ChannelPool(16, preload=16)
        try:
            started = time.monotonic()
            peak, raised = hammer(pool)
            elapsed = time.monotonic() - started
            print(
                f"\nChannelPool(16): peak borrowed {peak}, {THREADS * ROUNDS} checkouts "
                f"in {elapsed:.2f} s, raised {raised}, {pool!r}"
            )
            assert peak <= 16
            assert pool.in_use == 0 and pool.waiting == 0
            assert raised["connection"] > 0
            with pool.acquire() as channel:  # still serviceable afterwards
                assert channel.is_open
                channel.queue_declare(queue="", exclusive=True)
        finally:
            pool.close()


def test_a_channel_closed_by_the_broker_is_not_handed_out_again(
    rabbitmq_url: str, unique_name: str
) -> None:
    with Connection(rabbitmq_url) as conn:
        pool = conn.ChannelPool(1)
        with pytest.raises(NotFound), pool.acquire() as channel:
            broken = channel.resource
            channel.queue_declare(queue=unique_name, passive=True)
        assert not broken.is_open
        assert (pool.in_use, pool.idle) == (0, 0)
        with pool.acquire() as channel:
            assert channel.resource is not broken and channel.is_open
            channel.queue_declare(queue=unique_name, auto_delete=True)
            channel.queue_delete(queue=unique_name)
        pool.close()


def test_an_idle_connection_whose_link_died_is_replaced_on_checkout(unique_name: str) -> None:
    with FaultProxy(RABBITMQ_HOST, RABBITMQ_PORT) as proxy:
        pool = Connection(proxy.url_for()).Pool(2, verify_after=0)
        with pool.acquire() as conn:
            conn.default_channel.queue_declare(queue=unique_name, auto_delete=False)
            dead = conn.resource
        proxy.cut()
        deadline = time.monotonic() + 5
        while dead.verify() and time.monotonic() < deadline:
            time.sleep(0.01)  # the FIN reaches the client socket
        with pool.acquire() as conn:
            assert conn.resource is not dead
            channel = conn.default_channel
            channel.basic_publish(channel.prepare_message(b"ok"), routing_key=unique_name)
            assert channel.basic_get(unique_name, no_ack=True).body == b"ok"
            channel.queue_delete(queue=unique_name)
        assert proxy.connections_accepted == 2
        pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_the_child_uses_a_connection_it_opened_itself(unique_name: str) -> None:
    with FaultProxy(RABBITMQ_HOST, RABBITMQ_PORT) as proxy:
        template = Connection(proxy.url_for())
        pool = pools.connections[template]
        parent = pool.acquire()
        channel = parent.default_channel
        channel.queue_declare(queue=unique_name, auto_delete=False)
        parent_conn = parent.resource
        parent.release()
        assert proxy.connections_accepted == 1

        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 1
            try:
                child_pool = pools.connections[template]
                with child_pool.acquire() as conn:
                    code = 2 if conn.resource is parent_conn else 3
                    if code == 3:
                        ch = conn.default_channel
                        ch.basic_publish(ch.prepare_message(b"from child"), routing_key=unique_name)
                        got = ch.basic_get(unique_name, no_ack=True)
                        code = 0 if got is not None and got.body == b"from child" else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The child's connection came through the proxy as a new TCP connection...
        assert proxy.connections_accepted == 2
        # ...and the parent's pooled connection was not disturbed.
        with pool.acquire() as conn:
            assert conn.resource is parent_conn and conn.verify()
            ch = conn.default_channel
            ch.basic_publish(ch.prepare_message(b"from parent"), routing_key=unique_name)
            assert ch.basic_get(unique_name, no_ack=True).body == b"from parent"
            ch.queue_delete(queue=unique_name)


def test_producer_pool_publishes_from_threads(rabbitmq_url: str, unique_name: str) -> None:
    conn = Connection(rabbitmq_url)
    with pools.connections[conn].acquire_channel() as (_, channel):
        channel.queue_declare(queue=unique_name, auto_delete=False)

    def publish(n: int) -> None:
        for i in range(25):
            with pools.producers[conn].acquire(block=True, timeout=10) as producer:
                producer.publish({"n": n, "i": i}, routing_key=unique_name)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    producers = pools.producers[conn]
    assert (producers.in_use, pools.connections[conn].in_use) == (0, 0)
    with pools.connections[conn].acquire_channel() as (_, channel):
        assert message_count(channel, unique_name, 200) == 200
        channel.queue_delete(queue=unique_name)
