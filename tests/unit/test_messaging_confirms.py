"""Publisher confirms: per message and pipelined on memory://, and the tracker's bookkeeping."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from broker import Connection
from broker.connection.recovery import Topology
from broker.entities.owner import ChannelOwner
from broker.entities.queue import Queue
from broker.errors import ConfigurationError, MessageUnroutable
from broker.messaging.producer import Producer
from transports._shared.unbuffered import UNBUFFERED
from transports.memory.transport import inspect


@pytest.fixture
def conn() -> Iterator[Connection]:
    connection = Connection("memory://")
    yield connection
    connection.close()


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


def test_a_detached_confirm_channel_carries_its_count_to_the_producer_that_adopts_it(conn):
    first, second = Producer(conn, confirm_publish=True), Producer(conn, confirm_publish=True)
    first.publish(b"1", routing_key="q", declare=[Queue("q")])
    channel = first.detach_channel()
    assert channel is not None and channel.is_open and first.detach_channel() is None
    count = channel.confirm_listener
    second.adopt_channel(channel)
    second.publish(b"2", routing_key="q")
    assert second.channel is channel and channel.confirm_listener is count
    assert count.last_tag == 2  # one count per channel, whichever producer published
    second.close()
    assert not channel.is_open  # adopted as its own: closed with the producer
    first.publish(b"3", routing_key="q")  # the first one opens a channel of its own again
    assert first.channel is not channel and inspect()[0]["q"].messages == 3


def test_only_a_producers_own_open_channel_is_detached(conn):
    given = conn.channel()
    producer = Producer(given, confirm_publish=True, connection=conn)
    assert producer.detach_channel() is None and producer.channel is given and given.is_open
    own = Producer(conn, confirm_publish=True)
    closed = own.channel
    closed.close()
    assert own.detach_channel() is None


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
    assert time.monotonic() - started < 5  # a hang guard, not a speed check


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
    producer = Producer(channel, auto_declare=False, connection=_SilentOwner(channel))
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


class _SilentOwner(ChannelOwner):
    """The ChannelOwner of a RecordingChannel: nothing ever arrives."""

    def __init__(self, channel: RecordingChannel) -> None:
        self._channel = channel
        self._declared: set[Any] = set()
        self._topology = Topology()

    @property
    def declared_entities(self) -> set[Any]:
        return self._declared

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def default_channel(self) -> Any:
        return self._channel

    def channel(self) -> Any:
        return self._channel

    @property
    def connected(self) -> bool:
        return False

    @property
    def transport_options(self) -> Mapping[str, Any]:
        return {}

    @property
    def is_blocked(self) -> bool:
        return False

    def drain_events(self, timeout: float | None = None) -> None:
        time.sleep(min(timeout or 0.01, 0.05))
        raise TimeoutError

    def ensure(self, obj: Any, fun: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("these tests never retry")
