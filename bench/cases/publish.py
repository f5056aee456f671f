"""Case 3: unconfirmed publish of 100-byte messages."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.cases.common import (
    BODY_100,
    PRODUCER_PROPERTIES,
    amqp_connection,
    amqp_params,
    need,
    unique_name,
)
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env, throughput

__all__ = ["capped_queue", "cases", "pika_connection", "rate"]

#: The broker drops the oldest messages beyond this, so no round needs a purge.
QUEUE_ARGS = {"x-max-length": 1000}


@contextlib.contextmanager
def capped_queue(url: str, case: str) -> Iterator[str]:
    """A unique queue that never holds more than 1000 messages; deleted afterwards."""
    conn = amqp_connection(url)
    ch = conn.channel()
    name = unique_name(case)
    ch.queue_declare(queue=name, auto_delete=False, arguments=QUEUE_ARGS)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            ch.queue_delete(queue=name)
        with contextlib.suppress(Exception):
            conn.close()


def rate(count: int, publish: Callable[[], None]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        publish()
    return throughput(count, time.perf_counter() - started)


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    with capped_queue(env.url, "publish") as queue, Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue)
        n = env.n(10000, 300)
        yield lambda: rate(n, lambda: producer.publish(BODY_100))


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    with capped_queue(env.url, "publish") as queue, kombu.Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue)
        n = env.n(10000, 300)
        yield lambda: rate(n, lambda: producer.publish(BODY_100))


@contextlib.contextmanager
def _raw(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")
    with capped_queue(env.url, "publish") as queue:
        conn = amqp_connection(env.url)
        try:
            ch = conn.channel()
            n = env.n(10000, 300)
            yield lambda: rate(
                n,
                lambda: ch.basic_publish(
                    amqp.Message(BODY_100, **PRODUCER_PROPERTIES), exchange="", routing_key=queue
                ),
            )
        finally:
            conn.close()


def pika_connection(url: str) -> object:
    """A pika BlockingConnection to ``url``."""
    pika = need("pika")
    p = amqp_params(url)
    host, _, port = p["host"].rpartition(":")
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=host,
            port=int(port),
            virtual_host=p["virtual_host"],
            credentials=pika.PlainCredentials(p["userid"], p["password"]),
        )
    )


@contextlib.contextmanager
def _pika(env: Env) -> Iterator[Callable[[], float]]:
    with capped_queue(env.url, "publish") as queue:
        conn = pika_connection(env.url)
        try:
            ch = conn.channel()  # type: ignore[attr-defined]
            n = env.n(10000, 300)
            yield lambda: rate(n, lambda: ch.basic_publish("", queue, BODY_100))
        finally:
            conn.close()  # type: ignore[attr-defined]


def cases() -> list[Case]:
    return [
        Case(
            key="publish",
            title="publish 100 B, unconfirmed",
            unit="msg/s",
            higher_is_better=True,
            runners={BROKERPOOL: _brokerpool, KOMBU: _kombu, RAW: _raw, PIKA: _pika},
            method=(
                "10,000 publishes of a 100-byte body per round to the default exchange, routed "
                "to a queue capped at 1,000 messages (x-max-length). brokerpool and kombu use "
                "Producer.publish(bytes) (persistent by default, as kombu's default exchange "
                "is durable); py-amqp basic_publish(amqp.Message(body, ...)) with the same "
                "properties (persistent, application/data); pika "
                "BlockingChannel.basic_publish. Time of the publish loop only."
            ),
            target="≥ 0.95x py-amqp",
        )
    ]
