"""Cases 4 and 5: confirmed publishes, per message and pipelined."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.cases.common import BODY_100, PRODUCER_PROPERTIES, amqp_connection, need
from bench.cases.publish import capped_queue, pika_connection, rate
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env, Skip, throughput

__all__ = ["cases"]


@contextlib.contextmanager
def _bp_per_message(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    with capped_queue(env.url, "confirm") as queue, Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue, confirm_publish=True)
        n = env.n(1000, 100)
        yield lambda: rate(n, lambda: producer.publish(BODY_100))
        producer.close()


@contextlib.contextmanager
def _kombu_confirmed(env: Env) -> Iterator[Callable[[], float]]:
    kombu = need("kombu")
    with (
        capped_queue(env.url, "confirm") as queue,
        kombu.Connection(env.url, transport_options={"confirm_publish": True}) as conn,
    ):
        producer = conn.Producer(routing_key=queue)
        n = env.n(1000, 100)
        yield lambda: rate(n, lambda: producer.publish(BODY_100))


@contextlib.contextmanager
def _raw_per_message(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")
    with capped_queue(env.url, "confirm") as queue:
        conn = amqp_connection(env.url, confirm_publish=True)
        try:
            ch = conn.channel()
            n = env.n(1000, 100)
            yield lambda: rate(
                n,
                lambda: ch.basic_publish(
                    amqp.Message(BODY_100, **PRODUCER_PROPERTIES), exchange="", routing_key=queue
                ),
            )
        finally:
            conn.close()


@contextlib.contextmanager
def _pika_per_message(env: Env) -> Iterator[Callable[[], float]]:
    with capped_queue(env.url, "confirm") as queue:
        conn = pika_connection(env.url)
        try:
            ch = conn.channel()  # type: ignore[attr-defined]
            ch.confirm_delivery()
            n = env.n(1000, 100)
            yield lambda: rate(n, lambda: ch.basic_publish("", queue, BODY_100))
        finally:
            conn.close()  # type: ignore[attr-defined]


@contextlib.contextmanager
def _bp_pipelined(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    with capped_queue(env.url, "pipelined") as queue, Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue)
        if not hasattr(producer, "confirms"):
            raise Skip("broker.messaging.producer.Producer.confirms() does not exist yet")
        n = env.n(10000, 300)

        def measure() -> float:
            started = time.perf_counter()
            with producer.confirms(timeout=60):
                for _ in range(n):
                    producer.publish(BODY_100)
            return throughput(n, time.perf_counter() - started)

        yield measure
        producer.close()


@contextlib.contextmanager
def _raw_pipelined(env: Env) -> Iterator[Callable[[], float]]:
    """py-amqp has no batch API; this is the hand-written equivalent (confirm_select + drain)."""
    amqp = need("amqp")
    with capped_queue(env.url, "pipelined") as queue:
        conn = amqp_connection(env.url)
        try:
            ch = conn.channel()
            ch.confirm_select()
            state = {"acked": 0, "nacked": 0, "next": 1}

            def on_ack(tag: int, multiple: bool) -> None:
                state["acked"] = tag if multiple else state["acked"] + 1

            def on_nack(tag: int, multiple: bool) -> None:
                state["nacked"] += 1

            ch.events["basic_ack"].add(on_ack)
            ch.events["basic_nack"].add(on_nack)
            n = env.n(10000, 300)

            def measure() -> float:
                started = time.perf_counter()
                target = state["acked"] + n
                for _ in range(n):
                    ch.basic_publish(
                        amqp.Message(BODY_100, **PRODUCER_PROPERTIES),
                        exchange="",
                        routing_key=queue,
                    )
                while state["acked"] < target:
                    conn.drain_events(timeout=30)
                if state["nacked"]:
                    raise RuntimeError(f"{state['nacked']} publishes were nacked")
                return throughput(n, time.perf_counter() - started)

            yield measure
        finally:
            conn.close()


def cases() -> list[Case]:
    return [
        Case(
            key="confirm",
            title="publish 100 B, confirm per message",
            unit="msg/s",
            higher_is_better=True,
            runners={
                BROKERPOOL: _bp_per_message,
                KOMBU: _kombu_confirmed,
                RAW: _raw_per_message,
                PIKA: _pika_per_message,
            },
            method=(
                "1,000 publishes per round, each waiting for its publisher confirm: brokerpool "
                "Producer(confirm_publish=True); kombu transport_options={'confirm_publish': "
                "True}; py-amqp Connection(confirm_publish=True); pika confirm_delivery()."
            ),
        ),
        Case(
            key="pipelined",
            title="publish 100 B, pipelined confirms vs kombu confirmed",
            unit="msg/s",
            higher_is_better=True,
            runners={BROKERPOOL: _bp_pipelined, KOMBU: _kombu_confirmed, RAW: _raw_pipelined},
            method=(
                "brokerpool: 10,000 publishes inside one `with producer.confirms():` block, "
                "which returns only when every one is confirmed. kombu has no pipelined mode, "
                "so it is measured with confirm_publish=True (1,000 per round), which is what a "
                "kombu user who needs confirmed publishes gets. py-amqp: a hand-written "
                "pipeline (confirm_select, 10,000 publishes, drain until all acked)."
            ),
            target="≥ 5x kombu",
        ),
    ]
