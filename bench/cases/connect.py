"""Case 1: connect + close latency."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

from bench.cases.common import amqp_params, need
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env

__all__ = ["cases"]


def _timed(env: Env, once: Callable[[], None]) -> Callable[[], float]:
    def measure() -> float:
        samples = []
        for _ in range(env.n(20, 3)):
            started = time.perf_counter()
            once()
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1000

    return measure


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    def once() -> None:
        conn = Connection(env.url)
        conn.connect()
        conn.close()

    yield _timed(env, once)


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")

    def once() -> None:
        conn = kombu.Connection(env.url)
        conn.connect()
        conn.release()

    yield _timed(env, once)


@contextlib.contextmanager
def _raw(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")
    params = amqp_params(env.url)

    def once() -> None:
        conn = amqp.Connection(**params)
        conn.connect()
        conn.close()

    yield _timed(env, once)


@contextlib.contextmanager
def _pika(env: Env) -> Iterator[Callable[[], float]]:
    pika = need("pika")
    p = amqp_params(env.url)
    host, _, port = p["host"].rpartition(":")
    params = pika.ConnectionParameters(
        host=host,
        port=int(port),
        virtual_host=p["virtual_host"],
        credentials=pika.PlainCredentials(p["userid"], p["password"]),
    )

    def once() -> None:
        conn = pika.BlockingConnection(params)
        conn.close()

    yield _timed(env, once)


def cases() -> list[Case]:
    return [
        Case(
            key="connect",
            title="connect + close",
            unit="ms",
            higher_is_better=False,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu, RAW: _raw, PIKA: _pika},
            method=(
                "Median time of a fresh connection's AMQP handshake followed by a graceful "
                "close (20 per round), over loopback to the main RabbitMQ."
            ),
        )
    ]
