"""The ``kombu.common`` helpers (``broker.common``) on ``memory://``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from broker import (
    ConfigurationError,
    Connection,
    Exchange,
    Message,
    NotBoundError,
    Queue,
    RecoverableConnectionError,
)
from broker.common import (
    Broadcast,
    collect_replies,
    drain_consumer,
    eventloop,
    ignore_errors,
    itermessages,
    maybe_declare,
    send_reply,
)


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


def publish(conn: Connection, queue: Queue, *bodies: Any, **kwargs: Any) -> None:
    producer = conn.Producer()
    for body in bodies:
        producer.publish(body, routing_key=queue.name, declare=[queue], **kwargs)


# -- maybe_declare -------------------------------------------------------------------------


def test_maybe_declare_declares_once_per_connection(conn: Connection) -> None:
    queue = Queue("once")

    assert maybe_declare(queue, conn.default_channel) is True
    assert maybe_declare(queue, conn.default_channel) is False


def test_maybe_declare_with_retry_survives_a_dropped_connection(conn: Connection) -> None:
    queue = Queue("retried")(conn.default_channel)
    conn.collect()  # the link is gone; the queue's channel with it

    assert maybe_declare(queue, retry=True, max_retries=2) is True
    assert queue.channel.is_open  # revived onto the new connection
    assert queue.queue_declare(passive=True).message_count == 0


def test_maybe_declare_needs_a_channel() -> None:
    with pytest.raises(NotBoundError):
        maybe_declare(Queue("nowhere"))
    with pytest.raises(NotBoundError):
        maybe_declare(Queue("nowhere"), retry=True)


# -- Broadcast -----------------------------------------------------------------------------


def test_broadcast_gives_each_consumer_a_queue_of_its_own(conn: Connection) -> None:
    first, second = Broadcast("news"), Broadcast("news")
    assert first.name != second.name and first.name.startswith("bcast.")
    assert first.exchange is not None and first.exchange.type == "fanout"
    assert first.auto_delete and first.alias == "news"

    received: list[tuple[str, Any]] = []
    for queue in (first, second):
        maybe_declare(queue, conn.default_channel)
    with (
        conn.Consumer([first], callbacks=[lambda b, m: received.append(("first", b))]),
        conn.Consumer([second], callbacks=[lambda b, m: received.append(("second", b))]),
    ):
        conn.Producer(exchange=first.exchange).publish("hi")
        for _ in eventloop(conn, limit=2, timeout=1, ignore_timeouts=True):
            pass

    assert sorted(received) == [("first", "hi"), ("second", "hi")]


def test_broadcast_names() -> None:
    assert Broadcast("news", queue="mine").name == "mine"
    assert Broadcast("news", queue="mine", unique=True).name.startswith("mine.")
    assert Broadcast(exchange=Exchange("x", "fanout"), queue="q").exchange.name == "x"
    with pytest.raises(ConfigurationError, match="name"):
        Broadcast()


# -- eventloop and friends ------------------------------------------------------------------


def test_eventloop_raises_timeouts_unless_told_to_ignore_them(conn: Connection) -> None:
    conn.connect()
    with pytest.raises(TimeoutError):
        next(eventloop(conn, timeout=0.01))

    assert len(list(eventloop(conn, limit=3, timeout=0.01, ignore_timeouts=True))) == 3
    steps = eventloop(conn, timeout=0.01, ignore_timeouts=True)  # without a limit: endless
    assert len(list(itertools.islice(steps, 5))) == 5


def test_itermessages_yields_bodies_and_messages(conn: Connection) -> None:
    queue = Queue("iter")
    publish(conn, queue, {"n": 1}, {"n": 2})
    seen: list[Any] = []

    got = list(
        itermessages(conn, None, queue, limit=2, timeout=1, callbacks=[lambda b, m: seen.append(b)])
    )

    assert [body for body, _ in got] == [{"n": 1}, {"n": 2}]
    assert all(isinstance(message, Message) for _, message in got)
    assert seen == [{"n": 1}, {"n": 2}]
    for _, message in got:
        message.ack()


def test_drain_consumer_cancels_the_consumer_when_done(conn: Connection) -> None:
    queue = Queue("drained")
    publish(conn, queue, "a")
    consumer = conn.Consumer([queue], no_ack=True)

    assert [body for body, _ in drain_consumer(consumer, limit=1, timeout=1)] == ["a"]
    assert not consumer.is_consuming


# -- replies ---------------------------------------------------------------------------------


def test_send_reply_and_collect_replies_make_a_round_trip(conn: Connection) -> None:
    requests, replies = Queue("rpc"), Queue("rpc-replies")
    maybe_declare(replies, conn.default_channel)
    publish(conn, requests, {"x": 2}, reply_to="rpc-replies", correlation_id="c-1")
    request = requests(conn.default_channel).get()
    assert request is not None

    send_reply(Exchange(""), request, {"x2": 4}, producer=conn.Producer())
    request.ack()

    got = list(collect_replies(conn, None, replies, limit=1, timeout=1))
    assert got == [{"x2": 4}]
    reply = replies(conn.default_channel).get()
    assert reply is None  # consumed with no_ack


def test_send_reply_keeps_the_correlation_id(conn: Connection) -> None:
    requests, replies = Queue("rpc2"), Queue("rpc2-replies")
    maybe_declare(replies, conn.default_channel)
    publish(conn, requests, "ping", reply_to="rpc2-replies", correlation_id="c-7")
    request = requests(conn.default_channel).get()
    assert request is not None

    send_reply("", request, "pong", producer=conn.Producer())

    reply = replies(conn.default_channel).get(no_ack=True)
    assert reply is not None
    assert reply.payload == "pong"
    assert reply.properties["correlation_id"] == "c-7"


def test_send_reply_needs_reply_to(conn: Connection) -> None:
    queue = Queue("no-reply")
    publish(conn, queue, "x")
    request = queue(conn.default_channel).get(no_ack=True)
    assert request is not None
    with pytest.raises(ConfigurationError, match="reply_to"):
        send_reply("", request, "y", producer=conn.Producer())


# -- ignore_errors ---------------------------------------------------------------------------


def test_ignore_errors_swallows_connection_and_channel_errors_only(conn: Connection) -> None:
    def broken() -> None:
        raise RecoverableConnectionError("gone")

    assert ignore_errors(conn, broken) is None
    assert ignore_errors(conn, lambda x: x * 2, 21) == 42
    with ignore_errors(conn):
        raise RecoverableConnectionError("gone")
    with pytest.raises(ValueError), ignore_errors(conn):
        raise ValueError("not a broker error")
