"""Cases 4 and 5: confirmed publishes, per message and pipelined.

Pipelined confirms are measured twice, because they compare two different things:

* ``pipelined``: brokerpool's pipelined batch against kombu's confirmed
  publish, one message at a time. kombu has no pipelined mode, so this is a
  change of mode, what a kombu user who needs confirmed publishes gains by
  switching, not the same work done faster.
* ``pipelined-raw``: the like-for-like comparison, the same pipeline written by
  hand on raw py-amqp (confirm_select, N publishes, read acks until all N are in).

As in every publish case, the clock stops when the broker holds all N messages
in an unlimited queue (see :mod:`bench.cases.delivery`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from bench.cases.common import BODY_100, PRODUCER_PROPERTIES, amqp_connection, need
from bench.cases.delivery import delivery_queue, repeat, timed_delivery
from bench.cases.publish import pika_connection
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env, Runner

__all__ = ["cases"]


@contextlib.contextmanager
def _bp_per_message(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Connection

    with delivery_queue(env.url, "confirm") as queue, Connection(env.url) as conn:
        producer = conn.Producer(routing_key=queue.name, confirm_publish=True)
        n = env.n(1000, 100)
        yield lambda: timed_delivery(queue, n, repeat(n, lambda: producer.publish(BODY_100)))
        producer.close()


def _kombu_confirmed(key: str) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        kombu = need("kombu")
        with (
            delivery_queue(env.url, key) as queue,
            kombu.Connection(env.url, transport_options={"confirm_publish": True}) as conn,
        ):
            producer = conn.Producer(routing_key=queue.name)
            n = env.n(1000, 100)
            yield lambda: timed_delivery(queue, n, repeat(n, lambda: producer.publish(BODY_100)))

    return runner


@contextlib.contextmanager
def _raw_per_message(env: Env) -> Iterator[Callable[[], float]]:
    amqp = need("amqp")
    with delivery_queue(env.url, "confirm") as queue:
        conn = amqp_connection(env.url, confirm_publish=True)
        try:
            ch = conn.channel()
            n = env.n(1000, 100)

            def publish() -> None:
                message = amqp.Message(BODY_100, **PRODUCER_PROPERTIES)
                ch.basic_publish(message, exchange="", routing_key=queue.name)

            yield lambda: timed_delivery(queue, n, repeat(n, publish))
        finally:
            conn.close()


@contextlib.contextmanager
def _pika_per_message(env: Env) -> Iterator[Callable[[], float]]:
    with delivery_queue(env.url, "confirm") as queue:
        conn = pika_connection(env.url)
        try:
            ch = conn.channel()  # type: ignore[attr-defined]
            ch.confirm_delivery()
            n = env.n(1000, 100)
            yield lambda: timed_delivery(
                queue, n, repeat(n, lambda: ch.basic_publish("", queue.name, BODY_100))
            )
        finally:
            conn.close()  # type: ignore[attr-defined]


def _bp_pipelined(key: str) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        from broker import Connection

        with delivery_queue(env.url, key) as queue, Connection(env.url) as conn:
            producer = conn.Producer(routing_key=queue.name)
            n = env.n(10000, 300)

            def publish_all() -> None:
                with producer.confirms(timeout=60):
                    for _ in range(n):
                        producer.publish(BODY_100)

            yield lambda: timed_delivery(queue, n, publish_all)
            producer.close()

    return runner


@contextlib.contextmanager
def _raw_pipelined(env: Env) -> Iterator[Callable[[], float]]:
    """py-amqp has no batch API; this is the hand-written equivalent (confirm_select + drain)."""
    amqp = need("amqp")
    with delivery_queue(env.url, "pipelined-raw") as queue:
        conn = amqp_connection(env.url)
        try:
            ch = conn.channel()
            ch.confirm_select()
            state = {"acked": 0, "nacked": 0}

            def on_ack(tag: int, multiple: bool) -> None:
                state["acked"] = tag if multiple else state["acked"] + 1

            def on_nack(tag: int, multiple: bool) -> None:
                state["nacked"] += 1

            ch.events["basic_ack"].add(on_ack)
            ch.events["basic_nack"].add(on_nack)
            n = env.n(10000, 300)

            def publish_all() -> None:
                target = state["acked"] + n
                for _ in range(n):
                    ch.basic_publish(
                        amqp.Message(BODY_100, **PRODUCER_PROPERTIES),
                        exchange="",
                        routing_key=queue.name,
                    )
                while state["acked"] < target:
                    conn.drain_events(timeout=30)
                if state["nacked"]:
                    raise RuntimeError(f"{state['nacked']} publishes were nacked")

            yield lambda: timed_delivery(queue, n, publish_all)
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
                KOMBU: _kombu_confirmed("confirm"),
                RAW: _raw_per_message,
                PIKA: _pika_per_message,
            },
            method=(
                "1,000 publishes per round, each waiting for its publisher confirm, until the "
                "broker holds all 1,000 in the library's own unlimited queue: brokerpool "
                "Producer(confirm_publish=True); kombu transport_options={'confirm_publish': "
                "True}; py-amqp Connection(confirm_publish=True); pika confirm_delivery()."
            ),
        ),
        Case(
            key="pipelined",
            title=(
                "publish 100 B confirmed: brokerpool pipelined vs kombu per message "
                "(a change of mode)"
            ),
            unit="msg/s",
            higher_is_better=True,
            runners={BROKERPOOL: _bp_pipelined("pipelined"), KOMBU: _kombu_confirmed("pipelined")},
            method=(
                "Not like for like: what a kombu user who needs confirmed publishes gains by "
                "switching mode. brokerpool: 10,000 publishes inside one `with "
                "producer.confirms():` block, which returns once every one is confirmed. "
                "kombu has no pipelined mode: it waits for each confirm "
                "(confirm_publish=True, 1,000 per round). Both until the broker holds every "
                "message. The like-for-like comparison is the next case."
            ),
            target="≥ 5x kombu",
        ),
        Case(
            key="pipelined-raw",
            title="publish 100 B, pipelined confirms vs a hand-written py-amqp pipeline",
            unit="msg/s",
            higher_is_better=True,
            runners={BROKERPOOL: _bp_pipelined("pipelined-raw"), RAW: _raw_pipelined},
            method=(
                "Like for like: 10,000 publishes per round, every one confirmed, until the "
                "broker holds all of them. brokerpool: one `with producer.confirms():` block. "
                "py-amqp: the same pipeline by hand (confirm_select, 10,000 basic_publish, "
                "drain_events until every ack is in; a nack fails the figure)."
            ),
        ),
    ]
