"""The metric instruments, made once per ``instrument()`` from one meter, and the pool gauges.

Pools cost nothing per checkout: their gauges are *observed* -- read from the
pools' public counts when a metric reader collects -- and only a wait (the
slow path) records a value. Pools made while instrumented are observed for as
long as they live; the gauges sum the pools of one kind.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from broker.aio.pools.resource import ResourcePool as AsyncResourcePool
from broker.instrumentation.hooks import PoolCounts
from broker.instrumentation.otel.semconv import METRICS, POOL_API, POOL_KIND

__all__ = ["DURATION_BUCKETS", "Instruments", "PoolRegistry", "pool_attributes"]

#: Bucket bounds (seconds) advised for every duration histogram: a publish or a pool
#: checkout takes microseconds to milliseconds, so the SDK's default bounds (0, 5, 10, 25...,
#: made for milliseconds) would put everything in the first bucket.
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


def pool_attributes(pool: PoolCounts) -> dict[str, Any]:
    """``brokerpool.pool.kind`` (the pool's class name) and ``.api`` (sync or asyncio)."""
    api = "asyncio" if isinstance(pool, AsyncResourcePool) else "sync"
    return {POOL_KIND: type(pool).__name__, POOL_API: api}


_COUNTS: dict[str, Callable[[PoolCounts], int]] = {
    "in_use": lambda pool: pool.in_use,
    "idle": lambda pool: pool.idle,
    "waiting": lambda pool: pool.waiting,
}


class PoolRegistry:
    """The live pools whose counts the gauges report (weakly held, safe from any thread)."""

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.closed = False

    def add(self, pool: PoolCounts) -> None:
        """Observe ``pool`` from now on."""
        with self._lock:
            self._pools.add(pool)

    def totals(self, count: str) -> dict[tuple[tuple[str, Any], ...], int]:
        """The sum of ``count`` (``in_use``, ``idle`` or ``waiting``) per kind of pool."""
        with self._lock:
            pools = list(self._pools)
        sums: dict[tuple[tuple[str, Any], ...], int] = {}
        for pool in pools:
            key = tuple(sorted(pool_attributes(pool).items()))
            sums[key] = sums.get(key, 0) + _COUNTS[count](pool)
        return sums

    def __len__(self) -> int:
        return len(self._pools)

    def __repr__(self) -> str:
        return f"<PoolRegistry pools={len(self._pools)}{' closed' if self.closed else ''}>"


class Instruments:
    """Every instrument of :data:`~broker.instrumentation.otel.semconv.METRICS`, by name.

    Args:
        meter: where the instruments are made.
    """

    def __init__(self, meter: Meter) -> None:
        def counter(name: str) -> Any:
            m = METRICS[name]
            return meter.create_counter(m.name, unit=m.unit, description=m.description)

        def histogram(name: str) -> Any:
            m = METRICS[name]
            return meter.create_histogram(
                m.name,
                unit=m.unit,
                description=m.description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )

        self.sent = counter("messaging.client.sent.messages")
        self.publish_duration = histogram("messaging.client.operation.duration")
        self.consumed = counter("messaging.client.consumed.messages")
        self.process_duration = histogram("messaging.process.duration")
        self.redeliveries = counter("brokerpool.consumer.redeliveries")
        self.acks = counter("brokerpool.consumer.acks")
        self.rejects = counter("brokerpool.consumer.rejects")
        self.confirm_duration = histogram("brokerpool.confirm.duration")
        self.connects = counter("brokerpool.connection.connects")
        self.reconnects = counter("brokerpool.connection.reconnects")
        self.failovers = counter("brokerpool.connection.failovers")
        self.heartbeat_timeouts = counter("brokerpool.connection.heartbeat_timeouts")
        self.blocked = counter("brokerpool.connection.blocked.duration")
        self.pool_wait = histogram("brokerpool.pool.wait.duration")
        self.pools = PoolRegistry()
        for count in ("in_use", "idle", "waiting"):
            m = METRICS[f"brokerpool.pool.{count}"]
            meter.create_observable_gauge(
                m.name, callbacks=[self._observer(count)], unit=m.unit, description=m.description
            )

    def _observer(self, count: str) -> Any:
        pools = self.pools

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if pools.closed:  # uninstrumented: the API cannot remove an instrument
                return []
            return [Observation(value, dict(key)) for key, value in pools.totals(count).items()]

        return observe

    def close(self) -> None:
        """Stop reporting the pool gauges (``uninstrument()``)."""
        self.pools.closed = True

    def __repr__(self) -> str:
        return f"<Instruments {self.pools!r}>"
