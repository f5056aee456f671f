"""SimpleQueue and SimpleBuffer on memory://."""

from __future__ import annotations

import queue as std_queue
from collections.abc import Iterator

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import BrokerError
from broker.messaging.simple import SimpleBuffer, SimpleQueue
from transports.memory.transport import inspect, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


# -- SimpleQueue -------------------------------------------------------------------


def test_simple_queue_put_get_ack(conn):
    with conn.SimpleQueue("tasks") as tasks:
        tasks.put({"n": 1})
        tasks.put({"n": 2})
        assert tasks.qsize() == 2
        first = tasks.get(timeout=1)
        assert first.payload == {"n": 1}
        first.ack()
        second = tasks.get(block=False)
        assert second.payload == {"n": 2}
        second.ack()
        assert len(tasks) == 0
    assert inspect()[0]["tasks"].durable


def test_simple_queue_get_times_out_with_empty(conn, monkeypatch):
    tasks = conn.SimpleQueue("tasks")
    waits: list[float | None] = []
    drain = conn.drain_events

    def recording_drain(timeout: float | None = None) -> None:
        waits.append(timeout)
        drain(timeout=timeout)

    monkeypatch.setattr(conn, "drain_events", recording_drain)
    with pytest.raises(SimpleQueue.Empty, match=r"within 0\.2 s"):
        tasks.get(timeout=0.2)
    # It waited on the connection for the whole timeout (the first wait asks
    # for all of it), not in a polling loop of short sleeps.
    assert waits and waits[0] == 0.2
    with pytest.raises(std_queue.Empty):
        tasks.get_nowait()
    assert issubclass(SimpleQueue.Empty, BrokerError)
    tasks.close()


def test_simple_queue_get_wakes_up_for_a_message_from_another_connection(conn):
    tasks = conn.SimpleQueue("tasks")
    with pytest.raises(SimpleQueue.Empty):
        tasks.get(timeout=0.05)  # now consuming
    with Connection("memory://") as other:
        other.SimpleQueue("tasks").put("hi")
    assert tasks.get(timeout=1).payload == "hi"
    tasks.close()


def test_simple_queue_clear_and_unacked_messages_return_on_close(conn):
    tasks = conn.SimpleQueue("tasks")
    for i in range(3):
        tasks.put(i)
    assert tasks.get(timeout=1).payload == 0  # taken, never acked
    tasks.close()
    again = conn.SimpleQueue("tasks")
    assert again.qsize() == 3
    assert again.clear() == 3
    assert again.qsize() == 0
    again.close()


def test_simple_queue_keeps_working_after_a_broker_restart(conn):
    tasks = conn.SimpleQueue("tasks")
    tasks.put("before")
    assert tasks.get(timeout=1).payload == "before"  # consuming now
    reset()
    conn.ensure_connection(max_retries=1)  # replay: queue and consumer are back
    tasks.put("after")
    message = tasks.get(timeout=1)
    assert message.payload == "after"
    message.ack()
    tasks.close()


def test_simple_queue_accepts_a_queue_object(conn):
    queue = Queue("jobs", Exchange("work", "topic"), "jobs.#")
    with conn.SimpleQueue(queue) as jobs:
        jobs.put("a", routing_key="jobs.x")
        assert jobs.get(timeout=1).payload == "a"


def test_simple_buffer_is_transient_and_needs_no_acks(conn):
    with conn.SimpleBuffer("buf") as buf:
        buf.put(b"x")
        message = buf.get(timeout=1)
        assert message.acknowledged
        info = inspect()[0]["buf"]
        assert (info.durable, info.auto_delete) == (False, True)
        assert message.properties["delivery_mode"] == 1
    assert isinstance(SimpleBuffer.Empty(), std_queue.Empty)
