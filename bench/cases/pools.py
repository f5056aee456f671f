"""Cases 2 and 11: connection-pool acquire + release, single- and multi-threaded.

Both pools hold real, already-connected RabbitMQ connections (warmed up
before timing), so acquire/release does no broker I/O in either library and
the figure is pure pool bookkeeping: brokerpool probes a connection's socket
on checkout only after it sat idle for ``verify_after`` (1 s), which the
connections cycling through this loop never do.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases.common import need
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Runner, throughput

__all__ = ["cases"]

#: Seconds each round runs the acquire/release loop.
ROUND_SECONDS = 1.0
QUICK_ROUND_SECONDS = 0.05


def _hammer(acquire: Callable[[], Any], threads: int, seconds: float) -> float:
    """Run acquire()+release() from ``threads`` threads for ``seconds``; ops/s."""
    stop = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        n = 0
        try:
            start.wait()
            while not stop.is_set():
                item = acquire()
                item.release()
                n += 1
        except BaseException as exc:  # reported after the round
            errors.append(exc)
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return throughput(sum(counts), elapsed)


def _warm(pool: Any, limit: int, connect: Callable[[Any], None]) -> None:
    """Fill the pool with ``limit`` connected connections before timing."""
    items = [pool.acquire() for _ in range(limit)]
    for item in items:
        connect(item)
    for item in items:
        item.release()


def _brokerpool_runner(threads: int, limit: int, url: str | None) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        from broker import Connection

        pool = Connection(url or env.url).Pool(limit=limit)
        try:
            _warm(pool, limit, lambda c: c.connect())
            seconds = QUICK_ROUND_SECONDS if env.quick else ROUND_SECONDS
            yield lambda: _hammer(lambda: pool.acquire(block=True, timeout=10), threads, seconds)
        finally:
            pool.close()

    return runner


def _kombu_runner(threads: int, limit: int, url: str | None) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        kombu = need("kombu")
        pool = kombu.Connection(url or env.url).Pool(limit=limit)
        try:
            _warm(pool, limit, lambda c: c.connect())
            seconds = QUICK_ROUND_SECONDS if env.quick else ROUND_SECONDS
            yield lambda: _hammer(lambda: pool.acquire(block=True, timeout=10), threads, seconds)
        finally:
            pool.force_close_all()

    return runner


def _case(
    key: str, title: str, threads: int, limit: int, method: str, url: str | None = None
) -> Case:
    return Case(
        key=key,
        title=title,
        unit="ops/s",
        higher_is_better=True,
        runners={
            BROKERPOOL: _brokerpool_runner(threads, limit, url),
            KOMBU: _kombu_runner(threads, limit, url),
        },
        method=method,
        needs=frozenset() if url == "memory://" else frozenset({"rabbitmq"}),
    )


def cases() -> list[Case]:
    """Case 2 (pool-1, pool-32) and case 11 (scale-1 ... scale-256)."""
    shared = (
        "Acquire + release of an already-connected RabbitMQ connection, "
        "{threads} thread(s) on a pool of limit {limit}, for {secs} s per round; "
        "blocking acquire with a 10 s timeout in both libraries. Neither library probes the "
        "socket here: brokerpool does (a non-blocking poll) only for a connection idle for "
        "at least verify_after (1 s); kombu never does."
    )
    out = [
        _case("pool-1", "pool acquire+release, 1 thread", 1, 8,
              shared.format(threads=1, limit=8, secs=ROUND_SECONDS)),
        _case("pool-32", "pool acquire+release, 32 threads / limit 8", 32, 8,
              shared.format(threads=32, limit=8, secs=ROUND_SECONDS)),
        _case("pool-memory", "pool acquire+release, memory://, 1 thread", 1, 8,
              "Same as pool-1, but both pools hold memory:// connections (no sockets).",
              url="memory://"),
    ]  # fmt: skip
    for threads in (1, 8, 64, 256):
        out.append(
            _case(
                f"scale-{threads}",
                f"pool scaling, {threads} thread{'s' if threads > 1 else ''} / limit 8",
                threads,
                8,
                shared.format(threads=threads, limit=8, secs=ROUND_SECONDS),
            )
        )
    return out
