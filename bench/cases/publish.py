"""Case 3: unconfirmed publish of 100-byte messages, counted once the broker holds them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from bench.cases.common import (
    BODY_100,
    PRODUCER_PROPERTIES,
    amqp_connection,
    amqp_params,
    need,
)
from bench.cases.delivery import delivery_queue, repeat, timed_delivery
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env

__all__ = ["cases", "pika_connection"]


@contextlib.contextmanager
def _brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    with delivery_queue(env.url, "publish") as queue, Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue.name)
        n = env.n(10000, 300)
        yield lambda: timed_delivery(queue, n, repeat(n, lambda: producer.publish(BODY_100)))


@contextlib.contextmanager
def _kombu(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    with delivery_queue(env.url, "publish") as queue, kombu.Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue.name)
        n = env.n(10000, 300)
        yield lambda: timed_delivery(queue, n, repeat(n, lambda: producer.publish(BODY_100)))


@contextlib.contextmanager
def _raw(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")
    with delivery_queue(env.url, "publish") as queue:
        conn = amqp_connection(env.url)
        try:
            ch = conn.channel()
            n = env.n(10000, 300)

            def publish() -> None:
                message = amqp.Message(BODY_100, **PRODUCER_PROPERTIES)
                ch.basic_publish(message, exchange="", routing_key=queue.name)

            yield lambda: timed_delivery(queue, n, repeat(n, publish))
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
    with delivery_queue(env.url, "publish") as queue:
        conn = pika_connection(env.url)
        try:
            ch = conn.channel()  # type: ignore[attr-defined]
            n = env.n(10000, 300)
            yield lambda: timed_delivery(
                queue, n, repeat(n, lambda: ch.basic_publish("", queue.name, BODY_100))
            )
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
                "to a queue of the library's own with no length limit, purged before the round "
                "(untimed). The clock stops when the broker holds all 10,000 (a passive "
                "queue.declare on another connection counts them; fewer after 60 s, or more, "
                "fails the figure). brokerpool and kombu use Producer.publish(bytes) "
                "(persistent by default, as kombu's default exchange is durable); py-amqp "
                "basic_publish(amqp.Message(body, ...)) with the same properties (persistent, "
                "application/data); pika BlockingChannel.basic_publish."
            ),
            target="≥ 0.95x py-amqp",
        )
    ]
