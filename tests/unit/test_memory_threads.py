"""The memory broker under threads and fork: event-driven wake-ups, no loss, no duplicates."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.errors import RecoverableConnectionError
from transports.base import Channel, ConnectionParams
from transports.memory import transport as memory

Connect = Callable[..., memory.MemoryConnection]
PARAMS = ConnectionParams(hostname="localhost", port=0)


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open memory connections; all are closed afterwards."""
    opened: list[memory.MemoryConnection] = []

    def _connect() -> memory.MemoryConnection:
        connection = memory.Transport().connect(PARAMS)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def connection(connect: Connect) -> memory.MemoryConnection:
    return connect()


def publish(channel: Channel, key: str, body: bytes) -> None:
    channel.basic_publish(channel.prepare_message(body), "", key)


def test_a_publish_wakes_a_blocked_drain_promptly_on_the_draining_thread(
    connect: Connect,
) -> None:
    consumer = connect()
    channel = consumer.channel()
    channel.queue_declare("q")
    calls: list[tuple[float, int]] = []
    channel.basic_consume(
        "q", no_ack=True, callback=lambda m: calls.append((time.monotonic(), threading.get_ident()))
    )
    returned: list[float] = []
    drainer = threading.Thread(
        target=lambda: (consumer.drain_events(timeout=5), returned.append(time.monotonic()))
    )
    drainer.start()
    time.sleep(0.2)  # let it block in drain_events

    sent = time.monotonic()
    publish(connect().channel(), "q", b"wake up")
    drainer.join(timeout=10)

    assert returned, "drain_events did not return"
    assert returned[0] - sent < 1.0  # far below the 5 s timeout: woken, not polled
    assert calls[0][1] == drainer.ident != threading.get_ident()


def test_closing_a_connection_wakes_its_blocked_drain(connection: memory.MemoryConnection) -> None:
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            connection.drain_events(timeout=5)
        except BaseException as exc:
            errors.append(exc)

    drainer = threading.Thread(target=drain)
    drainer.start()
    time.sleep(0.1)
    connection.close()
    drainer.join(timeout=2)
    assert not drainer.is_alive()
    assert isinstance(errors[0], RecoverableConnectionError)


def test_concurrent_publishers_and_consumers_lose_and_duplicate_nothing(
    connect: Connect,
) -> None:
    publishers, per_publisher = 4, 500
    total = publishers * per_publisher
    setup = connect().channel()
    setup.queue_declare("work", auto_delete=False)
    received: collections.Counter[bytes] = collections.Counter()
    lock = threading.Lock()
    done = threading.Event()

    def consume(prefetch: int) -> None:
        conn = connect()
        ch = conn.channel()
        ch.basic_qos(0, prefetch, False)

        def on_message(message: Any) -> None:
            with lock:
                received[message.body] += 1
                if sum(received.values()) >= total:
                    done.set()
            ch.basic_ack(message.delivery_tag)

        ch.basic_consume("work", callback=on_message)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.05)

    def get_loop() -> None:
        ch = connect().channel()
        while not done.is_set():
            message = ch.basic_get("work")
            if message is None:
                time.sleep(0.001)
                continue
            with lock:
                received[message.body] += 1
                if sum(received.values()) >= total:
                    done.set()
            ch.basic_ack(message.delivery_tag)

    def produce(n: int) -> None:
        ch = connect().channel()
        for i in range(per_publisher):
            publish(ch, "work", f"{n}-{i}".encode())

    workers = [threading.Thread(target=consume, args=(p,)) for p in (1, 10, 0)]
    workers.append(threading.Thread(target=get_loop))
    workers += [threading.Thread(target=produce, args=(n,)) for n in range(publishers)]
    for worker in workers:
        worker.start()
    assert done.wait(timeout=30), f"only {sum(received.values())} of {total} arrived"
    for worker in workers:
        worker.join(timeout=5)

    assert len(received) == total
    assert set(received.values()) == {1}
    queues, _ = memory.inspect()
    assert (queues["work"].messages, queues["work"].unacked) == (0, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_usable_copy_of_the_broker(connect: Connect) -> None:
    channel = connect().channel()
    channel.queue_declare("q")
    publish(channel, "q", b"from the parent")
    stop = threading.Event()

    def keep_the_broker_busy() -> None:
        busy = connect().channel()
        while not stop.is_set():
            busy.basic_qos(0, 1, False)  # holds the broker lock for most of the loop

    threads = [threading.Thread(target=keep_the_broker_busy) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:  # the child: its broker lock must be free despite the busy thread
            code = 1
            with contextlib.suppress(BaseException):
                child = memory.Transport().connect(PARAMS).channel()
                message = child.basic_get("q", no_ack=True)
                code = 0 if message is not None and message.body == b"from the parent" else 3
            os._exit(code)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    deadline = time.monotonic() + 10
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if status[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the broker lock")
    assert os.waitstatus_to_exitcode(status[1]) == 0
    # The child worked on its own copy: the parent's message is still here.
    assert channel.basic_get("q", no_ack=True) is not None
