"""The capabilities every built-in transport's channel declares (transports.base).

Publisher confirms (:class:`~transports.base.PublisherConfirms`) and write
buffering (:class:`~transports.base.BufferedWrites`), run against memory,
RabbitMQ and Redis. A channel that confirms synchronously has every publish
settled when ``basic_publish`` returns and never calls its listener; one that
does not tells its listener as the connection is read.
"""

from __future__ import annotations

from tests.conformance import Names, message_count, publish
from tests.support.wait import drain_until, wait_until
from transports.base import Channel, ConfirmingChannel, TransportConnection


class Confirms:
    """A confirm listener that records what it is told."""

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.nacked: set[int] = set()

    def settled(self, tag: int) -> bool:
        return any(t >= tag for t in self.acked | self.nacked)

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acked.add(delivery_tag)

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked.add(delivery_tag)


def test_every_channel_declares_both_capabilities(channel: Channel) -> None:
    assert isinstance(channel, ConfirmingChannel)


def test_the_confirm_listener_is_kept_and_told_of_every_publish(
    connection: TransportConnection, channel: ConfirmingChannel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    channel.confirm_select()
    listener = Confirms()
    channel.confirm_listener = listener
    assert channel.confirm_listener is listener
    for n in range(3):
        publish(channel, queue, b"m%d" % n)
    if channel.confirms_synchronously:
        # Settled on return: nothing to wait for, nobody to tell.
        assert message_count(connection, queue) == 3
        assert not listener.acked and not listener.nacked
    else:
        drain_until(connection, lambda: listener.settled(3))
        assert not listener.nacked
    channel.confirm_listener = None
    assert channel.confirm_listener is None
    assert channel.is_open


def test_publishes_held_by_buffered_writes_all_arrive_in_order(
    connection: TransportConnection, channel: ConfirmingChannel, names: Names
) -> None:
    queue = names.queue()
    channel.queue_declare(queue, auto_delete=False)
    with channel.buffered_writes():
        for n in range(50):
            publish(channel, queue, b"%02d" % n)
    hold = channel.buffered_writes()  # the same, without ``with``
    hold.start()
    publish(channel, queue, b"50")
    hold.release()
    wait_until(lambda: message_count(connection, queue) == 51)
    bodies = [channel.basic_get(queue, no_ack=True) for _ in range(51)]
    assert [m.body for m in bodies if m is not None] == [b"%02d" % n for n in range(51)]
