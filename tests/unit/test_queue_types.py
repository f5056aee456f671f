"""Queue types: quorum and stream queues declare with what RabbitMQ requires, or refuse early.

What RabbitMQ 3.10 answers for each refused case (a 406 that closes the
channel) was checked against a real broker; here the refusal must come first,
from ``Queue(...)``, as a ConfigurationError that says what to change. The
declarations themselves run against the cluster in tests/cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import ConfigurationError
from broker.messaging.message import Message
from transports.memory.transport import MemoryChannel, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


def test_a_quorum_queue_declares_its_type_and_quorum_options() -> None:
    queue = Queue(
        "orders",
        queue_type="quorum",
        delivery_limit=5,
        dead_letter_strategy="at-least-once",
        queue_arguments={"x-overflow": "reject-publish", "x-dead-letter-exchange": "dlx"},
    )
    assert queue.queue_type == "quorum"
    assert (queue.delivery_limit, queue.dead_letter_strategy) == (5, "at-least-once")
    assert queue.declare_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "dlx",
    }
    assert "'orders' (quorum)" in repr(queue)


def test_the_type_may_come_from_queue_arguments_alone() -> None:
    queue = Queue("orders", queue_arguments={"x-queue-type": "quorum"}, delivery_limit=0)
    assert queue.queue_type == "quorum"
    assert queue.declare_arguments == {"x-queue-type": "quorum", "x-delivery-limit": 0}
    same = Queue("orders", queue_type="quorum", queue_arguments={"x-queue-type": "quorum"})
    assert same.declare_arguments == {"x-queue-type": "quorum"}


def test_stream_and_classic_queues_and_the_default() -> None:
    assert Queue("log", queue_type="stream").declare_arguments == {"x-queue-type": "stream"}
    classic = Queue("tmp", queue_type="classic", exclusive=True, max_priority=3)
    assert classic.declare_arguments == {"x-queue-type": "classic", "x-max-priority": 3}
    plain = Queue("plain")
    assert plain.queue_type is None and plain.declare_arguments is None
    assert Queue("q", queue_type="quorum") != Queue("q")  # a different declaration


@pytest.mark.parametrize("kind", ["quorum", "stream"])
@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"durable": False}, "durable=False"),
        ({"exclusive": True}, "exclusive=True"),
        ({"auto_delete": True}, "auto_delete=True"),
        ({"durable": False, "auto_delete": True}, "durable=False, auto_delete=True"),
    ],
)
def test_replicated_queues_must_be_durable_not_exclusive_not_auto_delete(
    kind: str, flags: dict[str, Any], named: str
) -> None:
    expected = rf"queue 'q': a {kind} queue must be durable, not exclusive and not auto-delete"
    with pytest.raises(ConfigurationError, match=expected) as caught:
        Queue("q", queue_type=kind, **flags)
    assert str(caught.value).endswith(f"got {named}")


@pytest.mark.parametrize("kind", ["quorum", "stream"])
def test_replicated_queues_are_named_and_have_no_priorities(kind: str) -> None:
    with pytest.raises(ConfigurationError, match=f"a {kind} queue cannot be server-named"):
        Queue("", queue_type=kind)
    with pytest.raises(ConfigurationError, match=f"a {kind} queue has no priorities"):
        Queue("q", queue_type=kind, max_priority=5)
    with pytest.raises(ConfigurationError, match="has no priorities"):
        Queue("q", queue_arguments={"x-queue-type": kind, "x-max-priority": 5})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queue_type": "lazy"}, "queue_type must be one of 'classic', 'quorum', 'stream'"),
        (
            {"queue_type": "quorum", "queue_arguments": {"x-queue-type": "classic"}},
            "queue_type='quorum' contradicts queue_arguments",
        ),
        ({"delivery_limit": 3}, "delivery_limit is an option of quorum queues only, not of a "
                                "queue without queue_type"),
        ({"queue_type": "stream", "delivery_limit": 3}, "not of a stream queue"),
        ({"queue_type": "classic", "dead_letter_strategy": "at-most-once"}, "quorum queues only"),
        ({"queue_type": "quorum", "delivery_limit": -1}, "delivery_limit must be an integer >= 0"),
        ({"queue_type": "quorum", "delivery_limit": True}, "delivery_limit must be an integer"),
        ({"queue_type": "quorum", "dead_letter_strategy": "twice"}, "must be one of"),
        (
            {"queue_type": "quorum", "dead_letter_strategy": "at-least-once"},
            "needs queue_arguments {'x-overflow': 'reject-publish'}",
        ),
    ],
)  # fmt: skip
def test_options_rabbitmq_would_refuse_or_ignore_are_configuration_errors(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace("{", r"\{")):
        Queue("q", **kwargs)


def test_recovery_declares_a_quorum_queue_again_with_the_same_arguments(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared: list[tuple[str, Any, bool, bool, bool]] = []
    real_declare = MemoryChannel.queue_declare

    def spy(self: MemoryChannel, queue: str = "", *args: Any, **kwargs: Any) -> Any:
        flags = (kwargs["durable"], kwargs["exclusive"], kwargs["auto_delete"])
        declared.append((queue, kwargs["arguments"], *flags))
        return real_declare(self, queue, *args, **kwargs)

    monkeypatch.setattr(MemoryChannel, "queue_declare", spy)
    queue = Queue("orders", Exchange("shop"), "new", queue_type="quorum", delivery_limit=3)
    queue(conn).declare()
    reset()  # the broker lost everything; the connection is dead
    conn.ensure_connection(max_retries=1)

    wanted = ("orders", {"x-queue-type": "quorum", "x-delivery-limit": 3}, True, False, False)
    assert declared == [wanted, wanted]


class _Raw:
    def __init__(self, headers: dict[str, Any] | None) -> None:
        self.body = b""
        self.properties: dict[str, Any] = (
            {} if headers is None else {"application_headers": headers}
        )
        self.delivery_info: dict[str, Any] = {"redelivered": bool(headers)}
        self.delivery_tag = 1


@pytest.mark.parametrize(
    ("headers", "count"),
    [
        ({"x-delivery-count": 2}, 2),
        ({"x-delivery-count": 0}, 0),
        ({"other": 1}, None),
        (None, None),
    ],
)
def test_a_message_shows_the_quorum_queues_delivery_count(
    headers: dict[str, Any] | None, count: int | None
) -> None:
    message = Message(_Raw(headers), channel=None)  # type: ignore[arg-type]
    assert message.delivery_count == count
