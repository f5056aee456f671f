"""A failover through the fault proxy, as metrics and as events on the publish span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection, Producer, Queue
from tests.support.faultproxy import FaultProxy
from tests.support.otel import Recording, recording


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


def test_a_cut_link_fails_over_once_inside_a_retrying_publish(
    otel: Recording, fault_proxy: Any, rabbitmq_url: str, unique_name: str
) -> None:
    proxy: FaultProxy = fault_proxy(5672)
    with Connection(f"{proxy.url_for()};{rabbitmq_url}") as conn:
        queue = Queue(unique_name, durable=False, auto_delete=True)
        producer = Producer(conn, routing_key=unique_name)
        producer.maybe_declare(queue)
        producer.publish(b"before", retry=True)
        assert conn.host == f"127.0.0.1:{proxy.port}"
        proxy.cut(rst=True)
        proxy.refuse()
        for _ in range(3):  # the cut is noticed by the first publish that reads or writes
            producer.publish(b"after", retry=True, declare=[queue])
        assert conn.host == "127.0.0.1:5672"
        queue(conn.default_channel).purge()

    [failover] = otel.points("brokerpool.connection.failovers")
    assert failover.value == 1
    assert failover.attributes["server.port"] == 5672
    assert failover.attributes["brokerpool.failover.from"] == f"127.0.0.1:{proxy.port}"
    [reconnect] = otel.points("brokerpool.connection.reconnects")
    assert reconnect.value == 1
    assert otel.total("brokerpool.connection.connects") == 2
    assert otel.total("messaging.client.sent.messages") == 4
    # The publish that met the cut carries the story as events.
    [survivor] = [
        span
        for span in otel.spans(f"publish {unique_name}")
        if any(event.name == "brokerpool.failover" for event in span.events)
    ]
    names = [event.name for event in survivor.events]
    assert names.index("brokerpool.connection_lost") < names.index("brokerpool.failover")
    assert names[-1] == "brokerpool.reconnected"
    assert survivor.status.is_ok
