"""Case 6: consume + ack throughput with prefetch 100."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases.common import amqp_connection, fill, need, raw_queue
from bench.cases.publish import pika_connection
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env, throughput

__all__ = ["PREFETCH", "cases", "consume_all"]

PREFETCH = 100


def _until(count: list[int], n: int, step: Callable[[], Any]) -> None:
    deadline = time.monotonic() + 120
    while count[0] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumed only {count[0]} of {n} messages")
        step()


def consume_all(conn: Any, queue: Any, n: int) -> float:
    """Consume and ack ``n`` ready messages with Consumer(on_message=...); msg/s.

    The same loop for brokerpool and kombu, on any transport: ``conn`` is
    either library's Connection and ``queue`` its Queue.
    """
    count = [0]

    def on_message(message: Any) -> None:
        message.ack()
        count[0] += 1

    started = time.perf_counter()
    with conn.Consumer([queue], on_message=on_message, prefetch_count=PREFETCH):
        _until(count, n, lambda: conn.drain_events(timeout=5))
    return throughput(n, time.perf_counter() - started)


@contextlib.contextmanager
def _consume_with(env: Env, connection_cls: Any, queue_cls: Any) -> Iterator[Callable[[], float]]:
    """The same Consumer(on_message=...) loop, for brokerpool and for kombu."""
    with raw_queue(env.url, "consume") as (name, filler), connection_cls(env.url) as conn:
        n = env.n(5000, 200)
        queue = queue_cls(name, no_declare=True)

        def measure() -> float:
            fill(filler, name, n)
            return consume_all(conn, queue, n)

        yield measure


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection, Queue

    with _consume_with(env, Connection, Queue) as measure:
        yield measure


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    with _consume_with(env, kombu.Connection, kombu.Queue) as measure:
        yield measure


@contextlib.contextmanager
def _raw(env: Env) -> Iterator[Callable[[], float]]:
    with raw_queue(env.url, "consume") as (name, filler):
        conn = amqp_connection(env.url)
        try:
            ch = conn.channel()
            ch.basic_qos(0, PREFETCH, False)
            n = env.n(5000, 200)

            def measure() -> float:
                fill(filler, name, n)
                count = [0]

                def on_message(message: Any) -> None:
                    ch.basic_ack(message.delivery_tag)
                    count[0] += 1

                started = time.perf_counter()
                tag = ch.basic_consume(queue=name, callback=on_message)
                _until(count, n, lambda: conn.drain_events(timeout=5))
                ch.basic_cancel(tag)
                return throughput(n, time.perf_counter() - started)

            yield measure
        finally:
            conn.close()


@contextlib.contextmanager
def _pika(env: Env) -> Iterator[Callable[[], float]]:
    need("pika")
    with raw_queue(env.url, "consume") as (name, filler):
        conn: Any = pika_connection(env.url)
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=PREFETCH)
            n = env.n(5000, 200)

            def measure() -> float:
                fill(filler, name, n)
                count = [0]

                def on_message(chan: Any, method: Any, props: Any, body: bytes) -> None:
                    chan.basic_ack(method.delivery_tag)
                    count[0] += 1

                started = time.perf_counter()
                tag = ch.basic_consume(name, on_message)
                _until(count, n, lambda: conn.process_data_events(time_limit=1))
                ch.basic_cancel(tag)
                return throughput(n, time.perf_counter() - started)

            yield measure
        finally:
            conn.close()


def cases() -> list[Case]:
    return [
        Case(
            key="consume",
            title="consume + ack, prefetch 100",
            unit="msg/s",
            higher_is_better=True,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu, RAW: _raw, PIKA: _pika},
            method=(
                "Each round fills the library's own queue with 5,000 100-byte messages "
                "(untimed, raw py-amqp), then times: start a consumer with prefetch 100, "
                "receive and ack every message one by one, cancel. brokerpool and kombu use "
                "Consumer(on_message=...) with message.ack()."
            ),
        )
    ]
