"""Case 7: in-process memory transport round trip (put + get + ack)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.cases.common import BODY_100, need, unique_name
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Skip, throughput

__all__ = ["cases", "round_trips"]


def _loop(n: int, queue: object) -> float:
    put, get = queue.put, queue.get  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(n):
        put(BODY_100)
        get(block=True, timeout=1).ack()
    return throughput(n, time.perf_counter() - started)


@contextlib.contextmanager
def round_trips(conn: object, name: str, n: int) -> Iterator[Callable[[], float]]:
    """``measure()``: ``n`` put + get + ack round trips on ``conn``'s SimpleQueue ``name``.

    The same loop for brokerpool and kombu, on any transport: ``conn`` is
    either library's Connection.
    """
    queue = conn.SimpleQueue(name)  # type: ignore[attr-defined]
    yield lambda: _loop(n, queue)
    queue.close()


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    try:
        import broker.messaging.simple  # noqa: F401
    except ImportError as exc:
        raise Skip(f"broker.messaging.simple (SimpleQueue) is not available: {exc}") from exc
    name, n = unique_name("memory"), env.n(5000, 200)
    with Connection("memory://") as conn, round_trips(conn, name, n) as measure:
        yield measure


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    name, n = unique_name("memory"), env.n(5000, 200)
    with kombu.Connection("memory://") as conn, round_trips(conn, name, n) as measure:
        yield measure


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
