"""kombu's ``ConsumerMixin`` (and ``ConsumerProducerMixin``) on ``memory://``.

A kombu worker subclass runs unchanged: ``get_consumers`` gives the
consumers, the ``on_*`` hooks are called when kombu calls them, and setting
``should_stop`` ends ``run()``. Underneath is a :class:`broker.ConsumerLoop`,
whose hooks (``should_stop``, ``on_iteration``, ``on_connect_error``) are
tested here too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from broker import (
    Connection,
    Consumer,
    ConsumerLoop,
    ConsumerMixin,
    ConsumerProducerMixin,
    Message,
    OperationalError,
    Queue,
    RetryPolicy,
)
from broker.retry.policy import Constant
from tests.support.net import free_port
from tests.support.wait import wait_until
from transports.base import Channel

TASKS = Queue("tasks", routing_key="tasks")


def publish(*bodies: Any, queue: Queue = TASKS, **kwargs: Any) -> None:
    with Connection("memory://") as conn:
        producer = conn.Producer()
        for body in bodies:
            producer.publish(body, routing_key=queue.name, declare=[queue], **kwargs)


class Worker(ConsumerMixin):
    """Stops after ``stop_after`` tasks; records every hook call."""

    def __init__(self, connection: Connection, stop_after: int = 2) -> None:
        self.connection = connection
        self.stop_after = stop_after
        self.bodies: list[Any] = []
        self.calls: list[str] = []
        self.ready_kwargs: dict[str, Any] = {}

    def get_consumers(self, Consumer: Any, channel: Channel) -> Sequence[Consumer]:
        self.calls.append("get_consumers")
        return [Consumer(queues=[TASKS], callbacks=[self.on_task])]

    def on_task(self, body: Any, message: Message) -> None:
        self.bodies.append(body)
        message.ack()
        if len(self.bodies) >= self.stop_after:
            self.should_stop = True

    def on_connection_revived(self) -> None:
        self.calls.append("revived")

    def on_consume_ready(
        self, connection: Connection, channel: Channel, consumers: Sequence[Consumer], **kw: Any
    ) -> None:
        assert all(consumer.is_consuming for consumer in consumers)
        self.ready_kwargs = kw
        self.calls.append("ready")

    def on_consume_end(self, connection: Connection, channel: Channel) -> None:
        self.calls.append("end")

    @contextlib.contextmanager
    def extra_context(self, connection: Connection, channel: Channel) -> Iterator[None]:
        self.calls.append("enter")
        yield
        self.calls.append("exit")


def test_a_kombu_worker_consumes_until_should_stop() -> None:
    publish({"n": 1}, {"n": 2})
    template = Connection("memory://")
    worker = Worker(template)

    worker.run(extra="passed on")

    assert worker.bodies == [{"n": 1}, {"n": 2}]
    assert worker.calls == ["revived", "get_consumers", "enter", "ready", "exit", "end"]
    assert worker.ready_kwargs == {"extra": "passed on"}
    assert not template.connected  # run() consumed on a clone, closed afterwards


def test_run_returns_at_once_when_should_stop_is_set() -> None:
    worker = Worker(Connection("memory://"))
    worker.should_stop = True

    worker.run()

    assert worker.calls == []


def test_should_stop_set_from_another_thread_ends_an_idle_run() -> None:
    worker = Worker(Connection("memory://"), stop_after=100)
    runner = threading.Thread(target=worker.run)
    runner.start()
    wait_until(lambda: "ready" in worker.calls, message="the worker to start consuming")

    worker.should_stop = True
    runner.join(10)

    assert not runner.is_alive()
    assert worker.calls[-1] == "end"


def test_a_body_that_does_not_decode_is_logged_and_acked(caplog: pytest.LogCaptureFixture) -> None:
    publish(b"\x80not json", content_type="application/json", content_encoding="utf-8")
    publish({"n": 2})
    worker = Worker(Connection("memory://"), stop_after=1)

    worker.run()

    assert worker.bodies == [{"n": 2}]
    assert "cannot decode message body" in caplog.text
    with Connection("memory://") as conn:
        assert TASKS(conn.default_channel).queue_declare(passive=True).message_count == 0


def test_connect_max_retries_gives_up_and_reports_each_failure() -> None:
    failures: list[tuple[BaseException, float]] = []

    class Unlucky(Worker):
        connect_max_retries = 2

        def on_connection_error(self, exc: BaseException, interval: float) -> None:
            failures.append((exc, interval))

    worker = Unlucky(Connection(f"amqp://127.0.0.1:{free_port()}//", connect_timeout=1))

    with pytest.raises(OperationalError, match="3 attempts"):
        worker.run()

    assert len(failures) == 2
    assert worker.calls == []


def test_the_producer_mixin_publishes_on_a_connection_of_its_own() -> None:
    publish({"n": 1})
    replies = Queue("replies", routing_key="replies")

    class Echo(ConsumerProducerMixin):
        def __init__(self, connection: Connection) -> None:
            self.connection = connection

        def get_consumers(self, Consumer: Any, channel: Channel) -> Sequence[Consumer]:
            return [Consumer(queues=[TASKS], callbacks=[self.echo])]

        def echo(self, body: Any, message: Message) -> None:
            self.producer.publish(body, routing_key="replies", declare=[replies])
            message.ack()
            self.should_stop = True

    echo = Echo(Connection("memory://"))
    echo.run()

    assert echo._producer_connection is None  # closed by on_consume_end
    with Connection("memory://") as conn:
        message = replies(conn.default_channel).get()
        assert message is not None and message.payload == {"n": 1}


# -- the ConsumerLoop hooks underneath ----------------------------------------------------------


def test_consumer_loop_stops_when_asked_by_should_stop_and_calls_on_iteration() -> None:
    iterations: list[int] = []
    conn = Connection("memory://")

    def consumers(channel: Channel) -> list[Consumer]:
        return [Consumer(channel, [TASKS], callbacks=[])]

    loop = ConsumerLoop(
        conn,
        consumers,
        drain_timeout=0.01,
        should_stop=lambda: len(iterations) >= 3,
        on_iteration=lambda: iterations.append(1),
    )
    loop.run(handle_signals=False)

    assert len(iterations) == 3
    conn.close()


def test_consumer_loop_reports_failed_connects_and_stops_during_the_backoff() -> None:
    failures: list[float] = []
    loop = ConsumerLoop(
        Connection(f"amqp://127.0.0.1:{free_port()}//", connect_timeout=1),
        lambda channel: [],
        policy=RetryPolicy(max_retries=None, backoff=Constant(30.0), timeout=None),
        on_connect_error=lambda exc, seconds: failures.append(seconds),
        should_stop=lambda: bool(failures),
    )

    loop.run(handle_signals=False)  # returns within a poll of should_stop, not after 30 s

    assert failures == [30.0]
