"""Exchanges of the memory transport: declaration rules and AMQP routing.

The routing tables pin down the AMQP 0-9-1 semantics RabbitMQ implements;
tests/conformance/ checks the same routing against RabbitMQ itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.errors import AccessRefused, ConfigurationError, PreconditionFailed
from tests.support.routing_cases import HEADERS_CASES, TOPIC_CASES
from transports.base import ConnectionParams
from transports.memory import transport as memory
from transports.memory.vhost import headers_match, topic_matches, vhosts


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


@pytest.mark.parametrize(("pattern", "key", "matches"), TOPIC_CASES)
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


@pytest.mark.parametrize(("arguments", "headers", "matches"), HEADERS_CASES)
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


# -- exchange-to-exchange bindings -------------------------------------------------


def publish(channel: memory.MemoryChannel, exchange: str, key: str, body: bytes) -> None:
    channel.basic_publish(channel.prepare_message(body), exchange, key)


def exchange_state(name: str) -> tuple[list[str], set[str]]:
    """The destinations an exchange is bound to and the sources bound to it."""
    found = vhosts()["/"].exchanges[name]
    return sorted(d.name for d in found.destinations()), set(found.sources)


def test_a_queue_reached_by_several_paths_gets_one_copy(channel: memory.MemoryChannel) -> None:
    # top -> left -> q, top -> right -> q, top -> q, and two matching bindings top -> left.
    channel.exchange_declare("top", "topic")
    channel.exchange_declare("left", "direct")
    channel.exchange_declare("right", "fanout")
    for queue in ("q", "other"):
        channel.queue_declare(queue)
    channel.queue_bind("q", "top", "#")
    channel.queue_bind("q", "left", "a.b")
    channel.queue_bind("q", "right")
    channel.queue_bind("other", "right")
    channel.exchange_bind("left", "top", "a.*")
    channel.exchange_bind("left", "top", "#")
    channel.exchange_bind("right", "top", "*.b")
    publish(channel, "top", "a.b", b"once")
    assert bodies(channel, "q") == [b"once"]
    assert bodies(channel, "other") == [b"once"]


def test_cycles_and_self_bindings_terminate_with_one_copy_per_queue(
    channel: memory.MemoryChannel,
) -> None:
    ring = ["a", "b", "c"]
    for name in ring:
        channel.exchange_declare(name, "fanout")
        channel.queue_declare(f"q-{name}")
        channel.queue_bind(f"q-{name}", name)
    for source, destination in zip(ring, ring[1:] + ring[:1], strict=True):
        channel.exchange_bind(destination, source)
    channel.exchange_bind("a", "a")
    publish(channel, "b", "", b"round")
    assert {name: bodies(channel, f"q-{name}") for name in ring} == {
        "a": [b"round"],
        "b": [b"round"],
        "c": [b"round"],
    }


def test_the_source_type_decides_what_crosses_and_the_destination_what_follows(
    channel: memory.MemoryChannel,
) -> None:
    channel.exchange_declare("h", "headers")
    channel.exchange_declare("d", "direct")
    channel.queue_declare("q")
    channel.queue_bind("q", "d", "k")
    channel.exchange_bind("d", "h", arguments={"x-match": "any", "kind": "pdf"})
    for body, key, headers in [
        (b"pdf-k", "k", {"kind": "pdf"}),
        (b"pdf-other", "other", {"kind": "pdf"}),
        (b"zip-k", "k", {"kind": "zip"}),
    ]:
        msg = channel.prepare_message(body, application_headers=headers)
        channel.basic_publish(msg, "h", key)
    assert bodies(channel, "q") == [b"pdf-k"]


def test_a_headers_source_refuses_a_bad_x_match(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("h", "headers")
    channel.exchange_declare("d", "direct")
    with pytest.raises(PreconditionFailed, match="x-match"):
        channel.exchange_bind("d", "h", arguments={"x-match": "some"})


def test_deleting_a_destination_removes_its_bindings(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("src", "fanout", auto_delete=False)
    channel.exchange_declare("dst", "fanout", auto_delete=False)
    channel.exchange_bind("dst", "src")
    channel.exchange_delete("dst")
    assert exchange_state("src") == ([], set())
    channel.exchange_declare("dst", "fanout", auto_delete=False)  # a new exchange of the same name
    channel.queue_declare("q")
    channel.queue_bind("q", "dst")
    publish(channel, "src", "", b"not routed")
    assert bodies(channel, "q") == []


def test_deleting_a_source_removes_its_bindings(channel: memory.MemoryChannel) -> None:
    channel.exchange_declare("src", "fanout", auto_delete=False)
    channel.exchange_declare("dst", "fanout", auto_delete=False)
    channel.queue_declare("q")
    channel.queue_bind("q", "dst")
    channel.exchange_bind("dst", "src")
    assert exchange_state("src") == (["dst"], set())
    assert exchange_state("dst") == ([], {"src"})
    channel.exchange_delete("src")
    assert exchange_state("dst") == ([], set())
    channel.exchange_declare("src", "fanout", auto_delete=False)
    publish(channel, "src", "", b"not routed")
    assert bodies(channel, "q") == []


def test_if_unused_counts_exchange_bindings_of_the_source_only(
    connection: memory.MemoryConnection, channel: memory.MemoryChannel
) -> None:
    channel.exchange_declare("src", "fanout", auto_delete=False)
    channel.exchange_declare("dst", "fanout", auto_delete=False)
    channel.exchange_bind("dst", "src")
    with pytest.raises(PreconditionFailed, match="in use"):
        channel.exchange_delete("src", if_unused=True)
    fresh = connection.channel()
    fresh.exchange_delete("dst", if_unused=True)  # a destination is not "used"
    fresh.exchange_delete("src", if_unused=True)
    assert not {"src", "dst"} & memory.inspect()[1].keys()


def test_auto_delete_sources_go_when_their_last_binding_does(
    channel: memory.MemoryChannel,
) -> None:
    # As on RabbitMQ: a -> b -> c, a and b auto-delete; deleting c takes b, then a.
    channel.exchange_declare("a", "fanout", auto_delete=True)
    channel.exchange_declare("b", "fanout", auto_delete=True)
    channel.exchange_declare("c", "fanout", auto_delete=False)
    channel.exchange_bind("b", "a")
    channel.exchange_bind("c", "b")
    channel.exchange_delete("c")
    assert not {"a", "b", "c"} & memory.inspect()[1].keys()
    # Unbinding does it too; the destination stays.
    channel.exchange_declare("s", "fanout", auto_delete=True)
    channel.exchange_declare("d", "fanout", auto_delete=True)
    channel.exchange_bind("d", "s")
    channel.exchange_unbind("d", "s")
    assert "s" not in memory.inspect()[1] and "d" in memory.inspect()[1]
    # And deleting the last queue downstream.
    channel.exchange_declare("y", "fanout", auto_delete=True)
    channel.exchange_declare("z", "fanout", auto_delete=True)
    channel.queue_declare("q")
    channel.queue_bind("q", "y")
    channel.exchange_bind("y", "z")
    channel.queue_delete("q")
    assert not {"y", "z"} & memory.inspect()[1].keys()


def test_unbinding_missing_exchanges_is_not_an_error_but_the_default_exchange_is_refused(
    connection: memory.MemoryConnection, channel: memory.MemoryChannel
) -> None:
    channel.exchange_unbind("nope", "neither", "k")
    channel.exchange_declare("x", "direct")
    channel.exchange_unbind("x", "x", "never-bound")
    assert channel.is_open
    for call in (
        lambda ch: ch.exchange_bind("x", "", "k"),
        lambda ch: ch.exchange_bind("", "x", "k"),
        lambda ch: ch.exchange_unbind("x", "", "k"),
    ):
        with pytest.raises(AccessRefused):
            call(connection.channel())


def test_mandatory_publish_counts_queues_reached_through_exchanges(
    channel: memory.MemoryChannel,
) -> None:
    returned: list[Any] = []
    channel.on_return = lambda *args: returned.append(args)
    channel.exchange_declare("src", "direct")
    channel.exchange_declare("dst", "fanout")
    channel.exchange_bind("dst", "src", "k")
    msg = channel.prepare_message(b"nowhere")
    channel.basic_publish(msg, "src", "k", mandatory=True)
    assert [r[:2] for r in returned] == [(312, "NO_ROUTE")]
    channel.queue_declare("q")
    channel.queue_bind("q", "dst")
    channel.basic_publish(channel.prepare_message(b"through"), "src", "k", mandatory=True)
    assert len(returned) == 1
    message = channel.basic_get("q", no_ack=True)
    assert message is not None
    assert (message.body, message.delivery_info["exchange"]) == (b"through", "src")
