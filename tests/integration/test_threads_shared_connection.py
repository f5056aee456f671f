"""Many threads, one connection: each thread on a channel of its own (issue 14).

Against the RabbitMQ on 127.0.0.1:5672 (and, where a test says so, the Redis
on 127.0.0.1:6379 and the embedded ``memory://`` broker). Every wait has a
deadline; a hang fails by pytest-timeout at worst.
"""

from __future__ import annotations

import queue as queues
import threading
from collections.abc import Callable, Iterator

import pytest

from broker import Connection, Consumer, Producer, Queue
from broker.errors import ChannelInUse
from broker.messaging.message import Message
from tests.support.wait import drain_until, wait_until

pytestmark = pytest.mark.broker

BODY = b"x" * 100


def run_threads(count: int, work: Callable[[int], None], timeout: float = 60.0) -> None:
    """Run ``work(i)`` on ``count`` threads at once; raise the first error any of them raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            start.wait(timeout)
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def queue_holds(conn: Connection, name: str, count: int) -> bool:
    ok = conn.default_channel.queue_declare(queue=name, passive=True)
    return ok is not None and ok.message_count == count


@pytest.fixture
def conn(rabbitmq_url: str) -> Iterator[Connection]:
    with Connection(rabbitmq_url) as connection:
        yield connection


@pytest.fixture
def shared_queue(conn: Connection, unique_name: str) -> Iterator[str]:
    conn.default_channel.queue_declare(queue=unique_name, auto_delete=False)
    yield unique_name
    conn.default_channel.queue_delete(queue=unique_name)


def test_threads_publish_plain_confirmed_and_batched_on_channels_of_one_connection(
    conn: Connection, shared_queue: str
) -> None:
    pool = conn.ChannelPool(24)
    per_thread = 150

    def work(i: int) -> None:
        with pool.acquire(block=True, timeout=10) as channel:
            mode = i % 3
            producer = Producer(channel, routing_key=shared_queue, confirm_publish=mode == 1)
            if mode == 2:
                with producer.confirms(timeout=30) as batch:
                    for n in range(per_thread):
                        producer.publish(BODY, message_id=f"{i}.{n}")
                assert batch.confirmed == per_thread
            else:
                for n in range(per_thread):
                    producer.publish(BODY, message_id=f"{i}.{n}")
            channel.queue_declare(queue=shared_queue, passive=True)  # a reply of its own

    run_threads(24, work)
    wait_until(lambda: queue_holds(conn, shared_queue, 24 * per_thread), timeout=15)
    pool.close()


def test_consumer_callbacks_run_on_the_draining_thread_while_others_publish(
    conn: Connection, shared_queue: str
) -> None:
    expected = 8 * 100
    seen_on: set[int] = set()
    received: list[bytes] = []
    ready = threading.Event()
    failures: list[BaseException] = []

    def on_message(message: Message) -> None:
        seen_on.add(threading.get_ident())
        received.append(message.body)
        message.ack()

    def drain() -> None:
        try:
            with Consumer(conn.channel(), [Queue(shared_queue, no_declare=True)],
                          on_message=on_message, prefetch_count=100):  # fmt: skip
                ready.set()
                drain_until(conn, lambda: len(received) >= expected, timeout=30)
        except BaseException as exc:
            failures.append(exc)
            ready.set()

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    assert ready.wait(10)

    def publish(i: int) -> None:
        with Producer(conn, routing_key=shared_queue, confirm_publish=True) as producer:
            for _ in range(100):
                producer.publish(BODY)

    run_threads(8, publish)
    drainer.join(40)
    assert not failures and not drainer.is_alive()
    assert len(received) == expected
    assert seen_on == {drainer.ident}


def test_deliveries_acked_rejected_and_requeued_from_worker_threads(
    conn: Connection, shared_queue: str
) -> None:
    total = 400
    producer = Producer(conn, routing_key=shared_queue, confirm_publish=True)
    with producer, producer.confirms():
        for n in range(total):
            producer.publish(str(n).encode())
    handed: queues.Queue[Message | None] = queues.Queue()
    settled: list[str] = []
    redelivered: list[bytes] = []

    def on_message(message: Message) -> None:
        if message.delivery_info.get("redelivered"):
            redelivered.append(message.body)
        handed.put(message)

    def worker() -> None:
        while (message := handed.get(timeout=30)) is not None:
            number = int(message.body)
            if number % 10 == 0 and not message.delivery_info.get("redelivered"):
                message.requeue()  # comes back once, flagged redelivered
                settled.append("requeued")
            elif number % 10 == 1:
                message.reject()
                settled.append("rejected")
            else:
                message.ack()
                settled.append("acked")

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in workers:
        thread.start()
    channel = conn.channel()
    with Consumer(channel, [Queue(shared_queue, no_declare=True)], on_message=on_message,
                  prefetch_count=50):  # fmt: skip
        drain_until(
            conn, lambda: settled.count("acked") + settled.count("rejected") >= total, timeout=30
        )
    for _ in workers:
        handed.put(None)
    for thread in workers:
        thread.join(10)
    channel.close()  # anything left unacked would go back to the queue now
    assert settled.count("requeued") == total // 10
    assert sorted(int(body) for body in redelivered) == list(range(0, total, 10))
    wait_until(lambda: queue_holds(conn, shared_queue, 0), timeout=5)


def test_synchronous_methods_from_many_threads_each_get_their_own_reply(
    conn: Connection,
) -> None:
    names: list[str] = []

    def work(i: int) -> None:
        for _ in range(10):
            with conn.channel() as channel:
                ok = channel.queue_declare(queue="", exclusive=True)
                assert ok is not None
                again = channel.queue_declare(queue=ok.queue, passive=True)
                assert again is not None and again.queue == ok.queue
                channel.basic_qos(0, 10 + i, False)
                channel.queue_bind(ok.queue, exchange="amq.direct", routing_key=ok.queue)
                assert channel.queue_purge(queue=ok.queue) == 0
                names.append(ok.queue)

    run_threads(16, work)
    assert len(set(names)) == 16 * 10


def test_a_second_thread_on_a_busy_channel_is_refused_before_anything_is_sent(
    conn: Connection, shared_queue: str
) -> None:
    channel = conn.channel()
    channel.confirm_select()
    waiting = threading.Event()

    def wait_on_the_channel() -> None:
        waiting.set()
        with pytest.raises(TimeoutError):
            channel.wait_confirms(3)  # nothing outstanding: it waits the 3 s out

    holder = threading.Thread(target=wait_on_the_channel, daemon=True)
    holder.start()
    assert waiting.wait(5)
    refused: list[ChannelInUse] = []
    while holder.is_alive() and not refused:
        try:
            channel.basic_publish(channel.prepare_message(BODY), routing_key=shared_queue)
        except ChannelInUse as exc:
            refused.append(exc)
    holder.join(10)
    assert refused and "another thread" in str(refused[0])
    channel.basic_publish(channel.prepare_message(BODY), routing_key=shared_queue)  # free again
    channel.close()


def test_heartbeats_keep_flowing_while_every_thread_is_busy(
    rabbitmq_url: str, unique_name: str
) -> None:
    with Connection(rabbitmq_url, heartbeat=1) as conn:
        conn.default_channel.queue_declare(queue=unique_name, auto_delete=True)
        stop = threading.Event()

        def work(i: int) -> None:
            with Producer(conn, routing_key=unique_name, confirm_publish=True) as producer:
                while not stop.is_set():
                    producer.publish(BODY)
                    stop.wait(0.05)

        timer = threading.Timer(4.0, stop.set)  # four heartbeat intervals of work
        timer.start()
        run_threads(8, work)
        timer.join()
        assert conn.connected
        conn.default_channel.queue_delete(queue=unique_name)


@pytest.mark.parametrize("transport", ["memory", "redis"])
def test_a_channel_pool_is_shared_by_threads_on_every_transport(
    transport: str, request: pytest.FixtureRequest, unique_name: str
) -> None:
    options = {}
    url = "memory://"
    if transport == "redis":
        url = request.getfixturevalue("redis_url")
        options["key_prefix"] = request.getfixturevalue("redis_key_prefix")
    with Connection(url, transport_options=options) as conn:
        conn.default_channel.queue_declare(queue=unique_name, auto_delete=False)
        pool = conn.ChannelPool(8)
        got: list[bytes] = []

        def work(i: int) -> None:
            for n in range(50):
                with pool.acquire(block=True, timeout=10) as channel:
                    producer = Producer(channel, routing_key=unique_name, confirm_publish=True)
                    producer.publish(f"{i}.{n}".encode())

        run_threads(16, work)
        consumer = Consumer(conn.channel(), [Queue(unique_name, no_declare=True)],
                            on_message=lambda m: (got.append(m.body), m.ack()))  # fmt: skip
        with consumer:
            drain_until(conn, lambda: len(got) >= 16 * 50, timeout=20)
        assert sorted(got) == sorted(f"{i}.{n}".encode() for i in range(16) for n in range(50))
        pool.close()
        conn.default_channel.queue_delete(queue=unique_name)
