"""Exchanges of the memory transport: declaration rules and AMQP routing.

The routing tables pin down the AMQP 0-9-1 semantics RabbitMQ implements;
tests/conformance/ checks the same routing against RabbitMQ itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.errors import AccessRefused, ConfigurationError, PreconditionFailed
from transports import memory
from transports._memory_vhost import headers_match, topic_matches
from transports.base import ConnectionParams


@pytest.fixture
def connection() -> Iterator[memory.MemoryConnection]:
    params = ConnectionParams(hostname="localhost", port=0)
    connection = memory.Transport().connect(params)
    yield connection
    connection.close()


@pytest.fixture
def channel(connection: memory.MemoryConnection) -> memory.MemoryChannel:
    return connection.channel()


def bodies(channel: memory.MemoryChannel, queue: str) -> list[bytes]:
    found = []
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        found.append(message.body)
    return found


def test_auto_delete_exchange_goes_with_its_last_binding(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("ephemeral", "direct", auto_delete=True)
    channel.queue_declare("q", auto_delete=False)
    channel.queue_unbind("q", "ephemeral", "never-bound")  # removes nothing: no deletion
    assert "ephemeral" in memory.inspect()[1]
    channel.queue_bind("q", "ephemeral", "a")
    channel.queue_bind("q", "ephemeral", "b")
    channel.queue_unbind("q", "ephemeral", "a")
    assert "ephemeral" in memory.inspect()[1]
    channel.queue_unbind("q", "ephemeral", "b")
    assert "ephemeral" not in memory.inspect()[1]


def test_reserved_names_and_the_default_exchange_are_protected(
    connection: memory.MemoryConnection,
) -> None:
    attempts: list[Callable[[memory.MemoryChannel], object]] = [
        lambda ch: ch.queue_declare("amq.mine"),
        lambda ch: ch.exchange_declare("amq.mine", "direct"),
        lambda ch: ch.exchange_delete("amq.direct"),
        lambda ch: ch.queue_bind("q", "", "q"),
    ]
    connection.channel().queue_declare("q")
    for attempt in attempts:
        with pytest.raises(AccessRefused):
            attempt(connection.channel())


def test_unknown_exchange_type_is_a_configuration_error(channel: memory.MemoryChannel) -> None:
    with pytest.raises(ConfigurationError, match=r"'x-delayed'.*direct, fanout, headers, topic"):
        channel.exchange_declare("ex", "x-delayed")
    assert channel.is_open  # bad input, not a broker error


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*", "a.b.c", False),
        ("*", "", False),
        ("*", "a", True),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b.a", False),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.c.d", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.#.c", "a.c", True),
        ("#.*", "", False),
        ("#.*", "a", True),
        ("*.#", "a.b", True),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


@pytest.mark.parametrize(
    ("arguments", "headers", "matches"),
    [
        ({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),  # all is the default
        ({"x-match": "all", "a": 1, "b": 2}, {"a": 1}, False),
        ({"x-match": "all", "a": 1}, {"a": 2}, False),
        ({"x-match": "any", "a": 1, "b": 2}, {"b": 2}, True),
        ({"x-match": "any", "a": 1, "b": 2}, {"c": 3}, False),
        ({"x-match": "any", "a": 1}, None, False),
        ({"x-match": "all"}, {}, True),
        ({"x-match": "all", "a": None}, {"a": "anything"}, True),  # presence only
        ({"x-match": "all", "a": None}, {}, False),
        ({"x-match": "all", "x-tag": 1, "a": 1}, {"a": 1}, True),  # x- keys ignored
        ({"x-match": "all-with-x", "x-tag": 1}, {"a": 1}, False),
        ({"x-match": "any-with-x", "x-tag": 1}, {"x-tag": 1}, True),
    ],
)
def test_headers_matching(arguments: dict[str, Any], headers: Any, matches: bool) -> None:
    assert headers_match(arguments, headers) is matches


def test_headers_exchange_refuses_a_bad_x_match(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("h", "headers")
    channel.queue_declare("q")
    with pytest.raises(PreconditionFailed, match="x-match"):
        channel.queue_bind("q", "h", arguments={"x-match": "some"})


def test_a_queue_bound_twice_gets_one_copy(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("t", "topic")
    channel.queue_declare("q")
    channel.queue_bind("q", "t", "a.*")
    channel.queue_bind("q", "t", "#")
    channel.basic_publish(channel.prepare_message(b"once"), "t", "a.b")
    assert bodies(channel, "q") == [b"once"]


def test_the_default_exchange_routes_to_the_queue_named_by_the_key(
    channel: memory.MemoryChannel,
) -> None:
    channel.queue_declare("jobs")
    channel.basic_publish(channel.prepare_message(b"job"), "", "jobs")
    channel.basic_publish(channel.prepare_message(b"lost"), "", "no-such-queue")
    assert bodies(channel, "jobs") == [b"job"]


def test_unbinding_stops_routing(channel: memory.MemoryChannel) -> None:
    channel.queue_declare("q")
    channel.queue_bind("q", "amq.direct", "k")
    channel.basic_publish(channel.prepare_message(b"1"), "amq.direct", "k")
    channel.queue_unbind("q", "amq.direct", "k")
    channel.basic_publish(channel.prepare_message(b"2"), "amq.direct", "k")
    assert bodies(channel, "q") == [b"1"]


def test_inspect_reports_queues_and_exchanges(channel: memory.MemoryChannel) -> None:
    channel.queue_declare("jobs", durable=True, auto_delete=False)
    channel.exchange_declare("logs", "topic", auto_delete=False)
    channel.queue_bind("jobs", "logs", "app.#")
    channel.basic_publish(channel.prepare_message(b"1"), "", "jobs")
    channel.basic_publish(channel.prepare_message(b"2"), "", "jobs")
    channel.basic_get("jobs")

    queues, exchanges = memory.inspect("/")
    assert queues["jobs"] == memory.QueueInfo("jobs", 1, 1, 0, True, False, False)
    assert exchanges["logs"].bindings == (("jobs", "app.#", {}),)
    assert {"", "amq.direct", "amq.topic", "amq.fanout", "amq.headers"} <= exchanges.keys()
