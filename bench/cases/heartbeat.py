"""Case 9: time to detect a blackholed broker with heartbeat=2.

A fresh loopback fault proxy (tests/support/faultproxy.py) sits in front of
the main RabbitMQ for each measurement. The client connects through it with
``heartbeat=2``; the proxy then drops every byte both ways without closing
anything, and the client's event loop is timed until it raises.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases.common import need
from bench.harness import BROKERPOOL, KOMBU, RAW, Case, Env, Skip

__all__ = ["cases"]

HEARTBEAT = 2
#: Give up (and fail the measurement) after this long without detection.
LIMIT = 15.0


def _proxy(env: Env) -> Any:
    try:
        from tests.support.faultproxy import FaultProxy
    except ImportError as exc:
        raise Skip(f"tests/support/faultproxy.py is not importable: {exc}") from exc
    from broker.url.parse import parse_url

    target = parse_url(env.url)
    return FaultProxy(target.hostname or "127.0.0.1", target.port or 5672)


def _timed_detection(env: Env, connect: Callable[[str], tuple[Callable[[], None], Any]]) -> float:
    """Connect through a proxy, blackhole it, return seconds until ``wait()`` raised."""
    with _proxy(env) as proxy:
        wait, teardown = connect(proxy.url_for())
        try:
            proxy.blackhole()
            started = time.perf_counter()
            while time.perf_counter() - started < LIMIT:
                try:
                    wait()
                except TimeoutError:
                    continue
                except Exception:
                    return time.perf_counter() - started
            raise RuntimeError(f"blackhole not detected within {LIMIT:g} s")
        finally:
            teardown()


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    def connect(url: str) -> tuple[Callable[[], None], Any]:
        conn = Connection(url, heartbeat=HEARTBEAT)
        conn.connect()
        conn.default_channel  # noqa: B018 - a channel is open, as in a real consumer
        return (lambda: conn.drain_events(timeout=1)), conn.collect

    yield lambda: _timed_detection(env, connect)


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")

    def connect(url: str) -> tuple[Callable[[], None], Any]:
        conn = kombu.Connection(url, heartbeat=HEARTBEAT)
        conn.connect()
        conn.default_channel  # noqa: B018

        def wait() -> None:
            # kombu's documented loop: short drains, heartbeat_check between them.
            try:
                conn.drain_events(timeout=0.25)
            except TimeoutError:
                conn.heartbeat_check()

        return wait, conn.collect

    yield lambda: _timed_detection(env, connect)


@contextlib.contextmanager
def _raw(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")

    def connect(url: str) -> tuple[Callable[[], None], Any]:
        from bench.cases.common import amqp_params

        conn = amqp.Connection(**amqp_params(url), heartbeat=HEARTBEAT)
        conn.connect()
        conn.channel()

        def wait() -> None:
            try:
                conn.drain_events(timeout=0.25)
            except TimeoutError:
                conn.heartbeat_tick()

        return wait, conn.collect

    yield lambda: _timed_detection(env, connect)


def cases() -> list[Case]:
    return [
        Case(
            key="heartbeat",
            title="detect a blackholed broker, heartbeat=2",
            unit="s",
            higher_is_better=False,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu, RAW: _raw},
            method=(
                "Connect with heartbeat=2 through a fresh loopback fault proxy in front of the "
                "main RabbitMQ, blackhole the proxy (bytes dropped both ways, sockets kept "
                "open), and time until the library's wait loop raises. brokerpool: "
                "drain_events(timeout=1) in a loop; kombu: drain_events(timeout=0.25) + "
                "heartbeat_check(); py-amqp: drain_events(timeout=0.25) + heartbeat_tick(). "
                "3 rounds, no warm-up."
            ),
            rounds=3,
            warmup=False,
        )
    ]
