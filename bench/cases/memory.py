"""Case 7: in-process memory transport round trip (put + get + ack)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.cases.common import BODY_100, need, unique_name
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Skip, throughput

__all__ = ["cases"]


def _loop(n: int, queue: object) -> float:
    put, get = queue.put, queue.get  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(n):
        put(BODY_100)
        get(block=True, timeout=1).ack()
    return throughput(n, time.perf_counter() - started)


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    try:
        import broker.simple  # noqa: F401
    except ImportError as exc:
        raise Skip(f"broker.simple (SimpleQueue) is not available: {exc}") from exc
    with Connection("memory://") as conn:
        queue = conn.SimpleQueue(unique_name("memory"))
        n = env.n(5000, 200)
        yield lambda: _loop(n, queue)
        queue.close()


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    with kombu.Connection("memory://") as conn:
        queue = conn.SimpleQueue(unique_name("memory"))
        n = env.n(5000, 200)
        yield lambda: _loop(n, queue)
        queue.close()


def cases() -> list[Case]:
    return [
        Case(
            key="memory",
            title="memory:// put + get + ack",
            unit="ops/s",
            higher_is_better=True,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu},
            method=(
                "5,000 round trips per round on each library's in-process memory transport: "
                "SimpleQueue.put(100-byte body), get(block=True, timeout=1), ack(). No broker "
                "or socket involved; py-amqp has no memory transport."
            ),
            target="≥ 5x kombu",
            needs=frozenset(),
        )
    ]
