"""Producer, Consumer, Message, SimpleQueue and topology replay on memory://."""

from __future__ import annotations

import queue as std_queue
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker import Connection
from broker.entities.queue import Exchange, Queue
from broker.errors import (
    BrokerError,
    ConfigurationError,
    ContentDisallowed,
    MessageStateError,
    MessageUnroutable,
    RecoverableConnectionError,
)
from broker.messaging.message import Message
from broker.messaging.producer import Consumer, Producer
from broker.messaging.simple import SimpleBuffer, SimpleQueue
from transports._shared.unbuffered import UNBUFFERED
from transports.memory.transport import MemoryChannel, inspect, reset


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


def drain_until(conn: Connection, predicate: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        conn.drain_events(timeout=max(deadline - time.monotonic(), 0.001))


def fetch(conn: Connection, name: str) -> Message:
    message = Queue(name)(conn).get()
    assert message is not None, f"no message in {name!r}"
    return message


# -- hello world -------------------------------------------------------------------


def test_kombu_style_hello_world(conn):
    media = Exchange("media", "direct")
    video = Queue("video", media, "video")
    producer = Producer(conn)
    producer.publish({"hello": "world"}, exchange=media, routing_key="video", declare=[video])
    received: list[tuple[Any, Message]] = []

    def handle(body: Any, message: Message) -> None:
        received.append((body, message))
        message.ack()

    with Consumer(conn, [video], callbacks=[handle]):
        conn.drain_events(timeout=1)
    assert [body for body, _ in received] == [{"hello": "world"}]
    message = received[0][1]
    assert message.content_type == "application/json"
    assert message.delivery_info["routing_key"] == "video"
    assert message.acknowledged


def test_producer_from_connection_declares_its_exchange_on_first_publish(conn):
    producer = Producer(conn, exchange=Exchange("logs", "fanout"))
    assert "logs" not in inspect()[1]  # constructing does no I/O
    producer.publish({"line": 1})
    assert inspect()[1]["logs"].type == "fanout"


# -- what goes on the wire ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        (b"\x00raw", "application/data", "binary"),
        ("text é", "text/plain", "utf-8"),
        ({"n": 1}, "application/json", "utf-8"),
    ],
)
def test_body_types_get_kombus_content_types(conn, body, content_type, encoding):
    Producer(conn).publish(body, routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    assert (message.content_type, message.content_encoding) == (content_type, encoding)
    assert message.payload == body


def test_delivery_mode_follows_exchange_durability(conn):
    Queue("q", Exchange("durable"), "k")(conn).declare()
    Queue("q", Exchange("transient", durable=False), "k")(conn).declare()
    Producer(conn, exchange="durable").publish(b"1", routing_key="k")
    Producer(conn, exchange=Exchange("transient", durable=False)).publish(b"2", routing_key="k")
    Producer(conn, exchange="durable").publish(b"3", routing_key="k", delivery_mode="transient")
    modes = [fetch(conn, "q").properties["delivery_mode"] for _ in range(3)]
    assert modes == [2, 1, 1]


def test_headers_properties_and_expiration(conn):
    headers = {"trace": "abc"}
    queue = Queue("q")
    Producer(conn).publish(
        {"x": 1},
        routing_key="q",
        declare=[queue],
        headers=headers,
        priority=5,
        expiration=1.5,
        message_id="m-1",
        correlation_id="c-1",
        reply_to=Queue("replies"),
    )
    message = fetch(conn, "q")
    assert message.headers == {"trace": "abc"}
    props = message.properties
    assert props["priority"] == 5
    assert props["expiration"] == "1500"
    assert (props["message_id"], props["correlation_id"]) == ("m-1", "c-1")
    assert props["reply_to"] == "replies"
    assert headers == {"trace": "abc"}  # the caller's dict is not modified


def test_compression_sets_kombus_header_and_is_undone_on_receive(conn):
    headers = {"k": "v"}
    Producer(conn).publish(
        {"big": "x" * 1000}, routing_key="q", declare=[Queue("q")], compression="zlib",
        headers=headers,
    )  # fmt: skip
    message = fetch(conn, "q")
    assert message.headers == {"k": "v", "compression": "application/x-gzip"}
    assert len(message.raw.body) < 1000
    assert message.payload == {"big": "x" * 1000}
    assert headers == {"k": "v"}


def test_explicit_content_type_sends_the_body_as_is(conn):
    Producer(conn).publish(
        "<a/>", routing_key="q", declare=[Queue("q")], content_type="application/xml"
    )
    message = fetch(conn, "q")
    assert (message.content_type, message.content_encoding) == ("application/xml", "utf-8")
    assert message.body == b"<a/>"


# -- accept and decoding ----------------------------------------------------------


def test_pickle_is_refused_unless_the_consumer_accepts_it(conn):
    queue = Queue("q")
    Producer(conn).publish({1, 2}, routing_key="q", declare=[queue], serializer="pickle")
    consumer = Consumer(conn, [queue], callbacks=[lambda body, message: None])
    consumer.consume()
    with pytest.raises(ContentDisallowed):
        conn.drain_events(timeout=1)
    consumer.cancel()


def test_accepted_pickle_is_decoded(conn):
    queue = Queue("q")
    Producer(conn).publish({1, 2}, routing_key="q", declare=[queue], serializer="pickle")
    bodies: list[Any] = []
    with Consumer(conn, [queue], callbacks=[lambda b, m: bodies.append(b)], accept=["pickle"]):
        conn.drain_events(timeout=1)
    assert bodies == [{1, 2}]


def test_on_decode_error_gets_the_message_instead(conn):
    queue = Queue("q")
    Producer(conn).publish("text", routing_key="q", declare=[queue])
    errors: list[tuple[Message, Exception]] = []
    consumer = Consumer(
        conn,
        [queue],
        accept=["json"],
        callbacks=[lambda b, m: pytest.fail("callback must not run")],
        on_decode_error=lambda message, exc: errors.append((message, exc)),
    )
    with consumer:
        conn.drain_events(timeout=1)
    assert len(errors) == 1
    assert isinstance(errors[0][1], ContentDisallowed)


def test_on_message_receives_undecoded_messages(conn):
    queue = Queue("q")
    Producer(conn).publish([1, 2], routing_key="q", declare=[queue])
    seen: list[Message] = []
    with Consumer(conn, [queue], on_message=seen.append):
        conn.drain_events(timeout=1)
    assert seen[0].payload == [1, 2]


def test_consumer_without_callbacks_complains(conn):
    queue = Queue("q")
    Producer(conn).publish(b"x", routing_key="q", declare=[queue])
    with Consumer(conn, [queue]), pytest.raises(ConfigurationError, match="no callbacks"):
        conn.drain_events(timeout=1)


# -- the message state machine -----------------------------------------------------


def test_acking_twice_raises_message_state_error(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    assert repr(message).startswith("<Message tag=1 state=RECEIVED")
    message.ack()
    assert message.acknowledged and message.state == "ACK"
    with pytest.raises(MessageStateError, match="already acknowledged"):
        message.ack()
    with pytest.raises(MessageStateError):
        message.reject()


def test_requeue_puts_the_message_back_marked_redelivered(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = fetch(conn, "q")
    message.requeue()
    assert message.state == "REQUEUED"
    again = fetch(conn, "q")
    assert again.delivery_info["redelivered"] is True
    again.reject()
    assert again.state == "REJECTED"
    assert Queue("q")(conn).get() is None


def test_no_ack_messages_are_settled_from_the_start(conn):
    Producer(conn).publish(b"x", routing_key="q", declare=[Queue("q")])
    message = Queue("q")(conn).get(no_ack=True)
    assert message is not None and message.acknowledged
    message.ack()  # harmless, as in kombu
    message.ack()


# -- consumer behaviour ------------------------------------------------------------


def test_prefetch_limits_unacked_deliveries(conn):
    queue = Queue("q")
    producer = Producer(conn)
    for i in range(3):
        producer.publish(i, routing_key="q", declare=[queue])
    held: list[Message] = []
    with Consumer(conn, [queue], on_message=held.append, prefetch_count=1):
        conn.drain_events(timeout=1)
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.1)
        assert len(held) == 1
        held[0].ack()
        conn.drain_events(timeout=1)
        assert len(held) == 2


def test_cancel_by_queue_add_queue_and_consuming_from(conn):
    producer = Producer(conn)
    a, b = Queue("a"), Queue("b")
    producer.maybe_declare(a)
    producer.maybe_declare(b)
    consumer = Consumer(conn, [a], on_message=lambda m: m.ack())
    consumer.consume()
    consumer.add_queue(b)
    assert consumer.consuming_from("a") and not consumer.consuming_from("b")
    consumer.consume()
    assert consumer.consuming_from("b")
    consumer.cancel_by_queue("a")
    assert not consumer.consuming_from("a") and consumer.is_consuming
    assert inspect()[0]["a"].consumers == 0
    consumer.cancel()
    assert not consumer.is_consuming
    assert conn.topology.consumers == []


def test_consume_is_idempotent_and_recorded_for_recovery(conn):
    consumer = Consumer(conn, [Queue("q")], on_message=lambda m: None)
    consumer.consume()
    consumer.consume()
    assert inspect()[0]["q"].consumers == 1
    assert conn.topology.consumers == [consumer]


def test_recover_redelivers_unacked_messages(conn):
    queue = Queue("q")
    Producer(conn).publish(b"x", routing_key="q", declare=[queue])
    seen: list[Message] = []
    with Consumer(conn, [queue], on_message=seen.append) as consumer:
        conn.drain_events(timeout=1)
        consumer.recover(requeue=True)
        conn.drain_events(timeout=1)
    assert [m.delivery_info["redelivered"] for m in seen] == [False, True]


def test_consumer_revive_moves_to_a_new_channel_with_the_same_tags(conn):
    queue = Queue("q")
    seen: list[Any] = []
    consumer = Consumer(conn, [queue], callbacks=[lambda b, m: (seen.append(b), m.ack())])
    consumer.consume()
    tags = dict(consumer._active)
    new_channel = conn.channel()
    consumer.revive(new_channel)
    assert consumer.channel is new_channel
    assert consumer._active == tags
    assert inspect()[0]["q"].consumers == 1
    Producer(conn).publish("after", routing_key="q")
    conn.drain_events(timeout=1)
    assert seen == ["after"]


# -- publisher confirms on memory (confirmed when basic_publish returns) ------------


def test_confirming_publish_returns_once_confirmed(conn):
    producer = Producer(conn, confirm_publish=True)
    producer.publish(b"x", routing_key="q", declare=[Queue("q")])
    assert inspect()[0]["q"].messages == 1


def test_confirm_publish_from_transport_options_without_mutating_them():
    options = {"confirm_publish": True}
    with Connection("memory://", transport_options=options) as conn:
        producer = Producer(conn)
        assert producer.confirm_publish
        producer.publish(b"x", routing_key="nowhere", retry=True)
    assert options == {"confirm_publish": True}


def test_unroutable_mandatory_message_raises_when_confirming(conn):
    producer = Producer(conn, confirm_publish=True)
    with pytest.raises(MessageUnroutable, match="'nowhere'"):
        producer.publish(b"x", routing_key="nowhere", mandatory=True)
    # The producer stays usable.
    producer.publish(b"x", routing_key="q", declare=[Queue("q")], mandatory=True)


def test_unroutable_mandatory_message_reaches_on_return(conn):
    returned: list[tuple[Any, ...]] = []
    for confirm in (True, False):
        producer = Producer(
            conn, on_return=lambda *args: returned.append(args), confirm_publish=confirm
        )
        producer.publish(b"x", routing_key="nowhere", mandatory=True)
    assert len(returned) == 2
    exc, exchange, routing_key, message = returned[0]
    assert isinstance(exc, MessageUnroutable)
    assert (exchange, routing_key, message.body) == ("", "nowhere", b"x")


def test_pipelined_confirms_count_every_publish(conn):
    producer = Producer(conn)
    queue = Queue("q")
    producer.maybe_declare(queue)
    with producer.confirms(timeout=5) as batch:
        for i in range(100):
            producer.publish(i, routing_key="q")
    assert (batch.published, batch.confirmed) == (100, 100)
    assert batch.nacked == batch.unconfirmed == batch.returned == []
    assert inspect()[0]["q"].messages == 100
    assert "confirmed=100" in repr(batch)


def test_pipelined_confirms_report_returned_messages(conn):
    producer = Producer(conn)
    batch = producer.confirms()
    with pytest.raises(MessageUnroutable, match="1 of 2 mandatory"), batch:
        producer.publish(b"x", routing_key="nowhere", mandatory=True, message_id="id-1")
        producer.publish(b"y", routing_key="nowhere")
    assert [r.message_id for r in batch.returned] == ["id-1"]


def test_confirms_blocks_do_not_nest(conn):
    producer = Producer(conn)
    with producer.confirms(), pytest.raises(ConfigurationError, match="already inside"):
        producer.confirms().__enter__()


def test_producers_carry_on_after_a_channel_error(conn):
    from broker.errors import NotFound

    for confirm in (False, True):
        producer = Producer(conn, confirm_publish=confirm)
        with pytest.raises(NotFound):
            producer.publish(b"x", exchange="missing", routing_key="k")
        # The channel error closed the channel; the next publish gets a new one.
        producer.publish(b"y", routing_key="q", declare=[Queue("q")])
    assert inspect()[0]["q"].messages == 2


# -- retry -------------------------------------------------------------------------


def test_publish_with_retry_after_the_broker_restarted(conn):
    producer = Producer(conn)
    producer.publish(b"1", routing_key="q", declare=[Queue("q")])
    reset()  # the broker "restarts": the connection is dead, everything is gone
    producer.publish(b"2", routing_key="q", declare=[Queue("q")], retry=True)
    assert inspect()[0]["q"].messages == 1


def test_bad_retry_policy_key_is_named(conn):
    with pytest.raises(ConfigurationError, match="'max_retry'"):
        Producer(conn).publish(b"x", retry=True, retry_policy={"max_retry": 1})


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


def test_simple_queue_get_times_out_with_empty(conn):
    tasks = conn.SimpleQueue("tasks")
    started = time.monotonic()
    with pytest.raises(SimpleQueue.Empty):
        tasks.get(timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.0
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


# -- confirm bookkeeping (pure logic, with a channel that records publishes) ---------


class RecordingChannel:
    """Confirms like the amqp transport's channel (later, as acks); acks come from tests."""

    channel_id = 7
    is_open = True
    confirms_synchronously = False

    def __init__(self) -> None:
        self.confirm_listener: Any = None
        self.on_return: Any = None
        self.confirming = False
        self.published: list[Any] = []

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.confirm_listener.on_ack(delivery_tag, multiple)

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.confirm_listener.on_nack(delivery_tag, multiple)

    def confirm_select(self, nowait: bool = False) -> None:
        self.confirming = True

    def buffered_writes(self) -> Any:
        return UNBUFFERED

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        return (body, properties)

    def basic_publish(self, msg: Any, *args: Any) -> None:
        self.published.append(msg)


def test_tracker_counts_tags_and_settles_multiple_acks_and_nacks():
    from broker.messaging.confirms import ConfirmTracker

    channel = RecordingChannel()
    tracker = ConfirmTracker(channel)  # type: ignore[arg-type]
    assert channel.confirming and not tracker.synchronous
    tags = [tracker.publish(f"m{i}", "", "q", False, True) for i in range(5)]
    assert tags == [1, 2, 3, 4, 5]
    channel.on_ack(3, True)  # settles 1, 2 and 3
    assert sorted(tracker.pending) == [4, 5]
    channel.on_nack(5, False)
    channel.on_ack(4, False)
    assert tracker.pending == {} and tracker.nacked == {5}
    tracker.publish("untracked", "", "q", False, False)
    assert tracker.last_tag == 6 and tracker.pending == {}


def test_tracker_wait_is_bounded_and_says_when_the_connection_was_blocked():
    from broker.errors import ConfirmTimeout
    from broker.messaging.confirms import ConfirmTracker

    tracker = ConfirmTracker(RecordingChannel())  # type: ignore[arg-type]
    tag = tracker.publish("m", "", "q", False, True)

    def silent_broker(timeout: float) -> None:
        time.sleep(min(timeout, 0.05))
        raise TimeoutError

    started = time.monotonic()
    with pytest.raises(ConfirmTimeout, match=r"within 0.1 s \(the broker is blocking"):
        tracker.wait(tag, 0.1, silent_broker, lambda: True)
    assert time.monotonic() - started < 1.0


def test_tracker_wait_returns_when_the_ack_arrives():
    from broker.messaging.confirms import ConfirmTracker

    channel = RecordingChannel()
    tracker = ConfirmTracker(channel)  # type: ignore[arg-type]
    tag = tracker.publish("m", "", "q", False, True)
    tracker.wait(tag, 1.0, lambda timeout: channel.on_ack(tag, False), lambda: False)
    assert not tracker.is_pending(tag)


def test_batch_reports_unconfirmed_messages_by_sequence_and_message_id():
    from broker.errors import ConfirmTimeout
    from broker.messaging.confirms import ConfirmTracker

    channel = RecordingChannel()
    producer = Producer(channel, auto_declare=False, connection=_FakeClient())  # type: ignore[arg-type]
    expected = r"2 of 3 messages were not confirmed.*#1 \(message_id='id-1'\), #2"
    batch = producer.confirms(timeout=0.2)
    with pytest.raises(ConfirmTimeout, match=expected), batch:
        for i in range(3):
            producer.publish(b"x", routing_key="q", message_id=f"id-{i}")
        assert isinstance(producer._tracker, ConfirmTracker)
        channel.on_ack(1, False)
    assert [(r.seq, r.delivery_tag, r.message_id) for r in batch.unconfirmed] == [
        (1, 2, "id-1"),
        (2, 3, "id-2"),
    ]
    assert batch.confirmed == 1


class _FakeClient:
    """Just enough of a Connection for a producer on RecordingChannel: nothing ever arrives."""

    is_blocked = False
    connected = False

    def __init__(self) -> None:
        self.transport_options: dict[str, Any] = {}
        self.declared_entities: set[Any] = set()

    def drain_events(self, timeout: float | None = None) -> None:
        time.sleep(min(timeout or 0.01, 0.05))
        raise TimeoutError


def test_producer_from_a_connection_does_no_io_until_it_publishes():
    from tests.support.net import free_port

    conn = Connection(f"amqp://guest:guest@127.0.0.1:{free_port()}//", connect_timeout=0.2)
    producer = Producer(conn, exchange=Exchange("logs", "fanout"), confirm_publish=True)
    assert not conn.connected and producer.connection is conn
