"""Exchange-to-exchange bindings (RabbitMQ's ``exchange.bind``), on memory and RabbitMQ.

Part of the channel conformance suite: the same fixtures, every test run once
per transport. What crosses a binding is decided by the source exchange's
type, what happens next by the destination's bindings; a queue gets one copy
of a message however many paths lead to it.
"""

from __future__ import annotations

import pytest

from broker.errors import AccessRefused, NotFound
from tests.conformance import (
    Names,
    declare_bound,
    get,
    message_count,
    publish,
    routed,
)
from tests.support.wait import wait_until
from transports.base import Channel, TransportConnection


def test_exchange_binding_routes_direct_source_to_fanout_destination(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    source, destination = names.exchange("src"), names.exchange("dst")
    direct = declare_bound(channel, names, source, "direct", {"direct": ["red"]})
    fanned = declare_bound(channel, names, destination, "fanout", {"a": [""], "b": ["any"]})
    channel.exchange_bind(destination, source, "red")
    # The source's type decides what crosses the binding; then the fanout takes over.
    publish(channel, "blue", b"blue", exchange=source)
    publish(channel, "red", b"red", exchange=source)
    for queue in (direct["direct"], fanned["a"], fanned["b"]):
        wait_until(lambda q=queue: message_count(connection, q) == 1)
    message = get(channel, fanned["a"], no_ack=True)
    assert (message.body, message.delivery_info["exchange"]) == (b"red", source)
    assert message.delivery_info["routing_key"] == "red"
    assert routed(channel, [*direct.values(), *fanned.values()]) == {
        direct["direct"]: [b"red"],
        fanned["a"]: [],
        fanned["b"]: [b"red"],
    }


def test_exchange_binding_routes_topic_source_to_direct_destination(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "topic", auto_delete=False)
    queues = declare_bound(
        channel, names, destination, "direct", {"usd": ["stock.usd"], "eur": ["stock.eur"]}
    )
    channel.exchange_bind(destination=destination, source=source, routing_key="stock.*")
    # bond.usd fails the topic binding; stock.gbp crosses it but matches no direct key.
    for key in ("bond.usd", "stock.gbp", "stock.eur", "stock.usd"):
        publish(channel, key, key.encode(), exchange=source)
    for queue in queues.values():
        wait_until(lambda q=queue: message_count(connection, q) == 1)
    assert routed(channel, list(queues.values())) == {
        queues["usd"]: [b"stock.usd"],
        queues["eur"]: [b"stock.eur"],
    }


def test_exchange_unbind_stops_routing(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "fanout", auto_delete=False)
    queues = declare_bound(channel, names, destination, "fanout", {"q": [""]})
    channel.exchange_bind(destination, source)
    publish(channel, "", b"bound", exchange=source)
    channel.exchange_unbind(destination, source)
    channel.exchange_unbind(destination, source)  # unbinding twice is not an error
    publish(channel, "", b"unbound", exchange=source)
    publish(channel, queues["q"], b"marker")  # routed after both, on the same channel
    wait_until(lambda: message_count(connection, queues["q"]) == 2)
    assert routed(channel, [queues["q"]]) == {queues["q"]: [b"bound", b"marker"]}


def test_a_queue_reached_by_several_paths_and_a_cycle_gets_one_copy(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    first, second = names.exchange("first"), names.exchange("second")
    queues = declare_bound(channel, names, first, "fanout", {"q": [""]})
    channel.exchange_declare(second, "fanout", auto_delete=False)
    channel.queue_bind(queues["q"], second)
    channel.exchange_bind(second, first)
    channel.exchange_bind(first, second)  # a cycle
    channel.exchange_bind(first, first)  # and a loop
    publish(channel, "", b"once", exchange=first)
    publish(channel, "", b"also once", exchange=second)
    publish(channel, queues["q"], b"marker")  # routed after both, on the same channel
    wait_until(lambda: message_count(connection, queues["q"]) >= 3)
    assert routed(channel, [queues["q"]]) == {queues["q"]: [b"also once", b"marker", b"once"]}


@pytest.mark.parametrize("missing", ["source", "destination"])
def test_exchange_bind_with_a_missing_exchange_raises_not_found(
    connection: TransportConnection, channel: Channel, names: Names, missing: str
) -> None:
    present, absent = names.exchange("present"), names.exchange("absent")
    channel.exchange_declare(present, "direct", auto_delete=False)
    ends = {"source": absent, "destination": present}
    if missing == "destination":
        ends = {"source": present, "destination": absent}
    with pytest.raises(NotFound) as failure:
        channel.exchange_bind(ends["destination"], ends["source"], "k")
    assert failure.value.reply_code == 404
    assert absent in str(failure.value)
    assert not channel.is_open
    with connection.channel() as fresh:
        fresh.exchange_declare(present, "direct", passive=True)


def test_the_default_exchange_cannot_be_bound_to_an_exchange(
    channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", auto_delete=False)
    with pytest.raises(AccessRefused) as failure:
        channel.exchange_bind(exchange, "", "k")
    assert failure.value.reply_code == 403
