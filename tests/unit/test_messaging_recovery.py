"""Recovery on memory://: the recorded topology and consumers are replayed after a reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import RecoverableConnectionError
from broker.messaging.producer import Consumer, Producer
from tests.support.wait import drain_until
from transports.memory.transport import MemoryChannel, inspect, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- topology replay -----------------------------------------------------------------


def test_replay_recreates_entities_and_consumers_after_a_broker_restart(conn):
    logs = Exchange("logs", "topic")
    errors = Queue("errors", logs, "*.error")
    seen: list[Any] = []
    consumer = Consumer(conn, [errors], callbacks=[lambda b, m: (seen.append(b), m.ack())])
    consumer.consume()
    hooks: list[int] = []
    conn.on_connect.append(lambda c: hooks.append(len(inspect()[0])))

    reset()  # everything is gone, the connection is dead
    conn.ensure_connection(max_retries=1)

    queues, exchanges = inspect()
    assert queues["errors"].consumers == 1
    assert ("errors", "*.error", {}) in exchanges["logs"].bindings
    assert hooks == [1]  # on_connect ran after the replay
    Producer(conn, exchange=logs).publish("disk full", routing_key="db.error")
    drain_until(conn, lambda: seen)
    assert seen == ["disk full"]


def test_a_declaration_cut_short_by_a_lost_connection_is_completed_on_retry(conn, monkeypatch):
    # The broker dies between queue.declare and queue.bind of a publish's
    # declare=[queue]: the queue is recorded for replay, its binding is not.
    # The retry must still bind it, or every message is confirmed and dropped
    # as unroutable (the loss test once lost a whole chunk this way).
    real_bind = MemoryChannel.queue_bind
    cuts = []

    def bind_once_then_die(self, *args, **kwargs):
        if not cuts:
            cuts.append(1)
            reset()  # the broker is gone mid-declaration
            raise RecoverableConnectionError("connection lost during queue.bind")
        return real_bind(self, *args, **kwargs)

    monkeypatch.setattr(MemoryChannel, "queue_bind", bind_once_then_die)
    queue = Queue("orders", Exchange("shop", "direct"), routing_key="new")
    Producer(conn, exchange=queue.exchange).publish(
        "order 1", routing_key="new", declare=[queue], retry=True
    )
    assert cuts == [1]
    assert inspect()[0]["orders"].messages == 1


def test_replay_gives_server_named_queues_a_new_name(conn):
    seen: list[Any] = []
    consumer = Consumer(
        conn,
        [Queue("", Exchange("events", "fanout"), exclusive=True)],
        callbacks=[lambda b, m: seen.append(b)],
        no_ack=True,
    )
    consumer.consume()
    queue = consumer.queues[0]
    old_name = queue.name
    conn.collect()  # the exclusive queue dies with its connection
    conn.connect()
    assert queue.name != old_name and queue.name.startswith("amq.gen-")
    assert inspect()[1]["events"].bindings == ((queue.name, "", {}),)
    Producer(conn, exchange=Exchange("events", "fanout")).publish("e1")
    drain_until(conn, lambda: seen)
    assert seen == ["e1"]


def test_replay_skips_what_was_deleted_or_cancelled(conn):
    queue = Queue("gone")(conn)
    queue.declare()
    consumer = Consumer(conn, [Queue("kept")], on_message=lambda m: None)
    consumer.consume()
    consumer.cancel()
    queue.delete()
    reset()
    conn.ensure_connection(max_retries=1)
    assert set(inspect()[0]) == {"kept"}
    assert inspect()[0]["kept"].consumers == 0
