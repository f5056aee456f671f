"""Scenarios run in a child process after monkey patching: ``python -m tests.gevent.scenarios``.

Monkey patching has to happen before anything imports ``socket`` or
``threading``, and cannot be undone, so it never happens inside the pytest
process: each scenario runs here, in a fresh interpreter, and prints one JSON
line with what it saw. ``tests/gevent/test_gevent_workers.py`` and
``tests/reliability/test_threads_gevent.py`` run it and assert on that line.

Usage: ``python -m tests.gevent.scenarios (gevent|eventlet) SCENARIO URL [URL2]``.
"""

from __future__ import annotations

import sys

LIBRARY = sys.argv[1] if __name__ == "__main__" else "gevent"
if __name__ == "__main__":
    if LIBRARY == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import eventlet

        eventlet.monkey_patch()

import json  # noqa: E402  (after monkey patching, on purpose)
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import pools  # noqa: E402
from broker import Connection, Consumer, Queue  # noqa: E402
from broker.errors import BrokerError  # noqa: E402
from broker.messaging.message import Message  # noqa: E402

#: Publishing green threads and messages each.
GREENLETS = 200
EACH = 20
#: Seconds the slow consumer callback works (five heartbeat intervals of 2 s).
WORK = 10.0


def spawn(fn: Any, *args: Any) -> Any:
    """Start a green thread of the patched library."""
    if LIBRARY == "gevent":
        import gevent

        return gevent.spawn(fn, *args)
    import eventlet

    return eventlet.spawn(fn, *args)


def join(threads: list[Any], timeout: float) -> None:
    """Wait for green threads (a hang fails the scenario by its own deadline)."""
    if LIBRARY == "gevent":
        import gevent

        gevent.joinall(threads, timeout=timeout)
        return
    for thread in threads:
        thread.wait()


def cooperative_sleep(seconds: float) -> None:
    """``time.sleep`` is patched: it yields to the other green threads."""
    time.sleep(seconds)


def workers(url: str, mode: str) -> dict[str, Any]:
    """200 green threads publish through ``pools.producers`` while one consumes slowly.

    The first delivery's callback works for :data:`WORK` seconds, sleeping
    (``mode='sleep'``) or burning CPU and yielding every 0.5 s with a 1 ms
    sleep (``mode='cpu'``);
    both connections have ``heartbeat=2``.
    """
    name = f"bp-gevent-{uuid.uuid4().hex[:8]}"
    closed: list[str] = []  # on_close hooks: "<who>: <error>" (None: a clean close)
    options = {"confirm_publish": True}
    publisher = Connection(
        url, heartbeat=2, transport_options=options,
        on_close=lambda c, exc: closed.append(f"publisher: {exc}"),
    )  # fmt: skip
    consumer_conn = Connection(
        url, heartbeat=2, on_close=lambda c, exc: closed.append(f"consumer: {exc}")
    )
    consumer_conn.default_channel.queue_declare(queue=name, auto_delete=False)
    received: set[str] = set()
    errors: list[str] = []
    slow_done: list[float] = []
    heartbeats: list[int] = []

    def on_message(message: Message) -> None:
        if not slow_done:
            # Nothing but heartbeats leaves the consumer's connection meanwhile.
            sent = driver.bytes_sent
            started = time.monotonic()
            while time.monotonic() - started < WORK:
                if mode == "cpu":
                    until = time.monotonic() + 0.5
                    while time.monotonic() < until:
                        sum(range(1000))
                    # Not sleep(0): gevent then runs the ready green threads but no
                    # timer (measured: no heartbeat at all in 10 s), so the broker
                    # drops the link. Any real wait lets timers and I/O run.
                    cooperative_sleep(0.001)
                else:
                    cooperative_sleep(0.5)
            slow_done.append(time.monotonic() - started)
            heartbeats.append(driver.bytes_sent - sent)
        received.add(message.body.decode())
        message.ack()

    def publish(i: int) -> None:
        for n in range(EACH):
            try:
                with pools.producers[publisher].acquire(block=True, timeout=60) as producer:
                    producer.publish(f"{i}.{n}".encode(), routing_key=name, retry=True)
            except BrokerError as exc:
                errors.append(f"publish {i}.{n}: {exc!r}")

    def consume() -> None:
        consumer = Consumer(consumer_conn, [Queue(name, no_declare=True)],
                            on_message=on_message, prefetch_count=10)  # fmt: skip
        with consumer:
            deadline = time.monotonic() + WORK + 60
            while len(received) < GREENLETS * EACH and time.monotonic() < deadline:
                try:
                    consumer_conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
                except BrokerError as exc:
                    errors.append(f"consume: {exc!r}")
                    return

    driver = consumer_conn.transport_connection.driver  # type: ignore[union-attr]
    started = time.monotonic()
    threads = [spawn(consume)] + [spawn(publish, i) for i in range(GREENLETS)]
    join(threads, WORK + 90)
    result = {
        "library": LIBRARY,
        "mode": mode,
        "published": GREENLETS * EACH,
        "received": len(received),
        "errors": errors[:5],
        "lost_links": [why for why in closed if not why.endswith(": None")],
        "slow_callback_s": slow_done[0] if slow_done else None,
        "heartbeats_during_slow_callback": heartbeats[0] if heartbeats else None,
        "seconds": round(time.monotonic() - started, 1),
        "consumer_connected": consumer_conn.connected,
    }
    consumer_conn.default_channel.queue_delete(queue=name)
    pools.reset()
    consumer_conn.close()
    publisher.close()
    return result


def failover(url_a: str, url_b: str) -> dict[str, Any]:
    """Green threads publish with confirms and ``retry=True`` while node A is killed.

    Prints ``READY`` once publishing runs; the parent kills A then. Runs 8 s.
    """
    name = f"bp-gevent-failover-{uuid.uuid4().hex[:8]}"
    conn = Connection(f"{url_a};{url_b}", heartbeat=2,
                      transport_options={"confirm_publish": True})  # fmt: skip
    conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False)
    confirmed: list[str] = []
    errors: list[str] = []
    stop = time.monotonic() + 8.0

    def publish(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                with pools.producers[conn].acquire(block=True, timeout=30) as producer:
                    producer.publish(
                        f"{i}.{n}".encode(), routing_key=name, retry=True,
                        declare=[Queue(name, durable=True, auto_delete=False)],
                    )  # fmt: skip
                confirmed.append(f"{i}.{n}")
            except BrokerError as exc:
                errors.append(repr(exc))
            n += 1
            cooperative_sleep(0.01)

    threads = [spawn(publish, i) for i in range(20)]
    cooperative_sleep(1.0)
    print("READY", flush=True)
    join(threads, 60)
    with pools.connections[conn].acquire(block=True, timeout=30) as pooled:
        host = pooled.host
        on_b = pooled.default_channel.queue_declare(queue=name, passive=True)
    pools.reset()
    conn.close()
    return {
        "library": LIBRARY,
        "confirmed": len(confirmed),
        "errors": errors[:5],
        "host": host,
        "held_on_final_host": on_b.message_count if on_b is not None else None,
    }


def main(argv: list[str]) -> int:
    scenario = argv[2]
    result = failover(argv[3], argv[4]) if scenario == "failover" else workers(argv[3], scenario)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
