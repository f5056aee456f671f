"""Behaviour every transport's channel shares, run against memory and RabbitMQ.

Where RabbitMQ answers asynchronously (returned messages, errors after an
ack or a publish, requeues after a close), the tests wait for the outcome
with a deadline, so the synchronous memory broker and the real one pass the
same assertions.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import ChannelError, NotFound, PreconditionFailed
from tests.conformance import (
    Connect,
    Names,
    declare_bound,
    get,
    message_count,
    publish,
    routed,
)
from tests.support.wait import drain_for, drain_until, wait_until
from transports.base import Channel, QueueDeclareOk, TransportConnection

# -- declarations ------------------------------------------------------------------


def test_queue_declare_reports_name_and_counts(channel: Channel, names: Names) -> None:
    queue = names.queue()
    ok = channel.queue_declare(queue, auto_delete=False)
    assert ok == QueueDeclareOk(queue, 0, 0)
    publish(channel, queue, b"one")
    publish(channel, queue, b"two")
    wait_until(lambda: channel.queue_declare(queue, passive=True).message_count == 2)


def test_exchange_redeclare_with_same_arguments_is_accepted(channel: Channel, names: Names) -> None:
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    channel.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    channel.exchange_declare(exchange, "topic", passive=True)
    assert channel.is_open


def test_redeclaring_an_exchange_as_another_type_fails_precondition(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", auto_delete=False)
    with pytest.raises(PreconditionFailed) as failure:
        channel.exchange_declare(exchange, "fanout", auto_delete=False)
    assert failure.value.reply_code == 406
    with connection.channel() as fresh:
        fresh.exchange_declare(exchange, "direct", passive=True)


def test_passive_declare_of_missing_queue_raises_not_found_and_closes_the_channel(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    with pytest.raises(NotFound) as missing:
        channel.queue_declare(names.queue("missing"), passive=True)
    assert missing.value.reply_code == 404
    assert not channel.is_open
    with pytest.raises(ChannelError):
        channel.exchange_declare("amq.direct", "direct", passive=True)
    with connection.channel() as fresh:
        fresh.exchange_declare("amq.direct", "direct", passive=True)
        assert fresh.is_open


def test_passive_declare_of_missing_exchange_raises_not_found(
    channel: Channel, names: Names
) -> None:
    with pytest.raises(NotFound) as missing:
        channel.exchange_declare(names.exchange("missing"), "direct", passive=True)
    assert missing.value.reply_code == 404


def test_publish_to_missing_exchange_raises_not_found(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    # RabbitMQ reports this asynchronously: the next synchronous call raises.
    with pytest.raises(NotFound):
        publish(channel, "key", b"lost", exchange=names.exchange("missing"))
        channel.queue_declare(queue, passive=True)


def test_server_named_queue(channel: Channel) -> None:
    ok = channel.queue_declare("", exclusive=True)
    assert ok is not None
    assert ok.queue.startswith("amq.gen-")
    publish(channel, ok.queue, b"to a generated name")
    assert get(channel, ok.queue, no_ack=True).body == b"to a generated name"


# -- publish and get -----------------------------------------------------------------

PROPERTIES = {
    "content_type": "application/x-test",
    "content_encoding": "binary",
    "delivery_mode": 2,
    "priority": 5,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "message_id": "msg-1",
    "timestamp": 1_700_000_000,
    "type": "kind",
    "app_id": "conformance",
    "expiration": "60000",
}
HEADERS = {"s": "text", "i": 42, "yes": True, "f": 1.5, "list": [1, "two"], "table": {"k": "v"}}


def test_publish_and_get_round_trip_body_properties_and_headers(
    channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    body = b"\x00\x01 binary \xff"
    publish(channel, queue, body, application_headers=HEADERS, **PROPERTIES)

    message = get(channel, queue)
    assert message.body == body
    for key, value in PROPERTIES.items():
        assert message.properties[key] == value, key
    assert message.properties["application_headers"] == HEADERS
    assert message.headers == HEADERS
    info = message.delivery_info
    assert (info["exchange"], info["routing_key"], info["redelivered"]) == ("", queue, False)
    assert message.delivery_tag == info["delivery_tag"] >= 1
    channel.basic_ack(message.delivery_tag)


def test_basic_get_on_empty_queue_returns_none(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    assert channel.basic_get(queue) is None


# -- consuming and acknowledging --------------------------------------------------------


def test_consume_delivers_through_drain_events_in_order(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    for n in range(3):
        publish(channel, queue, b"%d" % n)
    got: list[Any] = []
    tag = channel.basic_consume(queue, callback=got.append)
    assert tag  # a tag is generated when none is given

    drain_until(connection, lambda: len(got) == 3)
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    assert {m.delivery_info["consumer_tag"] for m in got} == {tag}
    for message in got:
        channel.basic_ack(message.delivery_tag)
    channel.basic_cancel(tag)
    wait_until(lambda: message_count(connection, queue) == 0)


def test_consumers_of_one_queue_are_served_round_robin(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    first: list[Any] = []
    second: list[Any] = []
    channel.basic_consume(queue, callback=first.append, no_ack=True)
    channel.basic_consume(queue, callback=second.append, no_ack=True)
    for n in range(4):
        publish(channel, queue, b"%d" % n)
    drain_until(connection, lambda: len(first) + len(second) == 4)
    assert (len(first), len(second)) == (2, 2)


def test_cancelled_consumer_gets_nothing_more(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    got: list[Any] = []
    tag = channel.basic_consume(queue, callback=got.append, no_ack=True)
    channel.basic_cancel(tag)
    publish(channel, queue, b"after cancel")
    drain_for(connection, 0.3)
    assert got == []
    wait_until(lambda: message_count(connection, queue) == 1)


def test_reject_with_requeue_redelivers_flagged(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    publish(channel, queue, b"again")
    first = get(channel, queue)
    assert first.delivery_info["redelivered"] is False
    channel.basic_reject(first.delivery_tag, requeue=True)

    second = get(channel, queue)
    assert second.body == b"again"
    assert second.delivery_info["redelivered"] is True
    assert second.delivery_tag != first.delivery_tag
    channel.basic_ack(second.delivery_tag)


def test_reject_without_requeue_discards(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    publish(channel, queue, b"gone")
    channel.basic_reject(get(channel, queue).delivery_tag, requeue=False)
    assert channel.basic_get(queue) is None
    assert message_count(connection, queue) == 0


def test_nack_multiple_requeues_every_earlier_delivery(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    for n in range(3):
        publish(channel, queue, b"%d" % n)
    messages = [get(channel, queue) for _ in range(3)]
    channel.basic_nack(messages[-1].delivery_tag, multiple=True, requeue=True)

    again = [get(channel, queue, no_ack=True) for _ in range(3)]
    assert [m.body for m in again] == [b"0", b"1", b"2"]
    assert all(m.delivery_info["redelivered"] for m in again)


def test_ack_multiple_settles_every_earlier_delivery(
    connection: TransportConnection, names: Names
) -> None:
    queue = names.queue()
    with connection.channel() as channel:
        channel.queue_declare(queue, auto_delete=False)
        for n in range(3):
            publish(channel, queue, b"%d" % n)
        messages = [get(channel, queue) for _ in range(3)]
        channel.basic_ack(messages[-1].delivery_tag, multiple=True)
    # Nothing comes back when the channel closes: all three were acked.
    assert message_count(connection, queue) == 0


def test_ack_of_unknown_delivery_tag_fails_precondition(channel: Channel, names: Names) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    # RabbitMQ answers an ack with nothing, so the error surfaces on the next call.
    with pytest.raises(PreconditionFailed) as failure:
        channel.basic_ack(999)
        channel.queue_declare(queue, passive=True)
    assert failure.value.reply_code == 406


def test_prefetch_count_limits_unacked_deliveries(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    for n in range(5):
        publish(channel, queue, b"%d" % n)
    channel.basic_qos(0, 2, False)
    got: list[Any] = []
    channel.basic_consume(queue, callback=got.append)

    drain_for(connection, 0.5)
    assert [m.body for m in got] == [b"0", b"1"]
    channel.basic_ack(got[0].delivery_tag)
    drain_until(connection, lambda: len(got) == 3)
    drain_for(connection, 0.3)
    assert [m.body for m in got] == [b"0", b"1", b"2"]


def test_unacked_deliveries_return_to_the_queue_when_the_channel_closes(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    for n in range(3):
        publish(channel, queue, b"%d" % n)
    consumer_channel = connection.channel()
    got: list[Any] = []
    consumer_channel.basic_consume(queue, callback=got.append)
    drain_until(connection, lambda: len(got) == 3)
    assert message_count(connection, queue) == 0

    consumer_channel.close()
    wait_until(lambda: message_count(connection, queue) == 3)
    again = [get(channel, queue, no_ack=True) for _ in range(3)]
    assert [m.body for m in again] == [b"0", b"1", b"2"]
    assert all(m.delivery_info["redelivered"] for m in again)


def test_unacked_gets_return_to_the_queue_when_the_connection_closes(
    connect: Connect, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    publish(channel, queue, b"kept")
    other = connect()
    assert get(other.channel(), queue).body == b"kept"
    other.close()

    again = get(channel, queue, no_ack=True)
    assert again.body == b"kept"
    assert again.delivery_info["redelivered"] is True


# -- purge and delete -------------------------------------------------------------------


def test_purge_and_delete_report_message_counts(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    for n in range(3):
        publish(channel, queue, b"%d" % n)
    wait_until(lambda: message_count(connection, queue) == 3)
    assert channel.queue_purge(queue) == 3
    publish(channel, queue, b"a")
    publish(channel, queue, b"b")
    wait_until(lambda: message_count(connection, queue) == 2)
    assert channel.queue_delete(queue) == 2
    with pytest.raises(NotFound):
        message_count(connection, queue)


# -- routing ----------------------------------------------------------------------------


def test_direct_exchange_routes_by_exact_key(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    queues = declare_bound(
        channel, names, exchange, "direct", {"a": ["red", "blue"], "b": ["green"]}
    )
    for key in ("red", "green", "blue", "black"):
        publish(channel, key, key.encode(), exchange=exchange)
    wait_until(lambda: message_count(connection, queues["a"]) == 2)
    assert routed(channel, list(queues.values())) == {
        queues["a"]: [b"blue", b"red"],
        queues["b"]: [b"green"],
    }


def test_topic_exchange_matches_star_and_hash(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    queues = declare_bound(
        channel,
        names,
        exchange,
        "topic",
        {"one": ["stock.*.nyse"], "any": ["stock.#"], "tail": ["#.nyse"]},
    )
    for key in ("stock.usd.nyse", "stock.eur", "stock", "bond.usd.nyse", "stock.usd.nyse.x"):
        publish(channel, key, key.encode(), exchange=exchange)
    wait_until(lambda: message_count(connection, queues["any"]) == 4)
    assert routed(channel, list(queues.values())) == {
        queues["one"]: [b"stock.usd.nyse"],
        queues["any"]: [b"stock", b"stock.eur", b"stock.usd.nyse", b"stock.usd.nyse.x"],
        queues["tail"]: [b"bond.usd.nyse", b"stock.usd.nyse"],
    }


def test_fanout_exchange_ignores_the_routing_key(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    queues = declare_bound(channel, names, exchange, "fanout", {"a": ["x"], "b": [""]})
    publish(channel, "anything", b"everyone", exchange=exchange)
    wait_until(lambda: message_count(connection, queues["b"]) == 1)
    assert routed(channel, list(queues.values())) == {
        queues["a"]: [b"everyone"],
        queues["b"]: [b"everyone"],
    }


def test_headers_exchange_matches_all_or_any(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    queues = declare_bound(
        channel,
        names,
        exchange,
        "headers",
        {
            "all": [{"x-match": "all", "format": "pdf", "type": "report"}],
            "any": [{"x-match": "any", "format": "pdf", "type": "log"}],
        },
    )
    samples = {
        b"pdf-report": {"format": "pdf", "type": "report"},
        b"zip-log": {"format": "zip", "type": "log"},
        b"pdf-only": {"format": "pdf"},
        b"none": {},
    }
    for body, headers in samples.items():
        publish(channel, "", body, exchange=exchange, application_headers=headers)
    wait_until(lambda: message_count(connection, queues["any"]) == 3)
    assert routed(channel, list(queues.values())) == {
        queues["all"]: [b"pdf-report"],
        queues["any"]: [b"pdf-only", b"pdf-report", b"zip-log"],
    }


def test_mandatory_unroutable_message_is_returned(
    connection: TransportConnection, channel: Channel, names: Names
) -> None:
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct", auto_delete=False)
    returned: list[tuple[Any, ...]] = []
    channel.on_return = lambda *args: returned.append(args)

    channel.basic_publish(channel.prepare_message(b"dropped"), exchange, "nowhere")
    channel.basic_publish(channel.prepare_message(b"bounced"), exchange, "nowhere", mandatory=True)
    # RabbitMQ sends basic.return asynchronously; it is dispatched while draining.
    drain_until(connection, lambda: len(returned) >= 1)
    drain_for(connection, 0.2)
    assert len(returned) == 1
    reply_code, reply_text, to_exchange, routing_key, message = returned[0]
    assert (reply_code, reply_text) == (312, "NO_ROUTE")
    assert (to_exchange, routing_key, message.body) == (exchange, "nowhere", b"bounced")
