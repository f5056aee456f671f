"""kombu's ``ConsumerMixin`` and ``ConsumerProducerMixin``, run by a :class:`ConsumerLoop`.

A kombu consumer program subclasses :class:`ConsumerMixin`, sets
``self.connection`` and returns its consumers from :meth:`~ConsumerMixin.get_consumers`;
``run()`` consumes until ``self.should_stop`` is set. That shape is kept here,
hooks and all, and the loop underneath is brokerpool's
:class:`~broker.messaging.consumer_loop.ConsumerLoop`: it reconnects after a
lost connection (failing over between alternates), and the connection's
recovery record declares the queues again and revives the same consumers.

Example::

    class Worker(ConsumerMixin):
        def __init__(self, connection):
            self.connection = connection

        def get_consumers(self, Consumer, channel):
            return [Consumer(queues=[task_queue], callbacks=[self.on_task])]

        def on_task(self, body, message):
            handle(body)
            message.ack()

    Worker(Connection("amqp://a//;amqp://b//")).run()

Differences from kombu's mixin, each in ``docs/migrating.rst``: after a
reconnect the consumers made by the first ``get_consumers`` call are revived
(kombu calls it again on a fresh connection), a channel error ends ``run()``
instead of restarting it, and the generator ``consume(limit=...)`` is not
provided (``run()`` is the loop).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from broker.messaging.consumer import Consumer
from broker.messaging.consumer_loop import DEFAULT_LOOP_POLICY, ConsumerLoop
from broker.messaging.message import Message
from broker.messaging.producer import Producer

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from transports.base import Channel

__all__ = ["ConsumerMixin", "ConsumerProducerMixin"]

logger = logging.getLogger("broker.consumer")

#: ``Consumer(queues=..., callbacks=..., ...)``: a Consumer on the loop's channel.
ConsumerFactory = Callable[..., Consumer]


class ConsumerMixin:
    """Base class of a consumer program (kombu's ``kombu.mixins.ConsumerMixin``).

    Set :attr:`connection` and implement :meth:`get_consumers`; override the
    ``on_*`` hooks you need. :meth:`run` consumes on a clone of
    :attr:`connection` (:meth:`create_connection`) until :attr:`should_stop`
    is set -- from a callback, another thread or a signal handler; it is
    looked at about once a second.

    Attributes:
        connection: the :class:`broker.Connection` to consume from (a template:
            it is cloned, never connected by the mixin).
        connect_max_retries: failed connects in a row before :meth:`run` gives
            up with :class:`~broker.errors.OperationalError`; ``None``: never.
        should_stop: set it to true to make :meth:`run` cancel the consumers
            and return.
    """

    connection: Connection
    connect_max_retries: int | None = None
    should_stop: bool = False

    # -- what a subclass implements ---------------------------------------------------

    def get_consumers(self, Consumer: ConsumerFactory, channel: Channel) -> Sequence[Consumer]:
        """The consumers to run: ``Consumer(queues=..., callbacks=...)`` makes one on ``channel``.

        Called once, after the first connect. kombu's argument name is kept:
        ``Consumer`` is :class:`broker.Consumer` with the channel and
        :meth:`on_decode_error` filled in.
        """
        raise NotImplementedError("ConsumerMixin subclasses implement get_consumers()")

    # -- hooks (all optional) ------------------------------------------------------------

    def on_connection_revived(self) -> None:
        """After every (re)connect, before consuming resumes."""

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        """A connect attempt failed; the next one follows in ``interval`` seconds."""
        logger.warning("broker connection error, trying again in %s seconds: %r", interval, exc)

    def on_consume_ready(
        self, connection: Connection, channel: Channel, consumers: Sequence[Consumer], **kwargs: Any
    ) -> None:
        """The consumers consume; ``kwargs`` are those given to :meth:`run`."""

    def on_consume_end(self, connection: Connection, channel: Channel) -> None:
        """The consumers were cancelled; the connection is about to close."""

    def on_iteration(self) -> None:
        """Before every wait for events."""

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A body that does not decode: logged and acked, as kombu does (override to keep it)."""
        logger.error(
            "cannot decode message body: %r (type: %r, encoding: %r)",
            exc,
            message.content_type,
            message.content_encoding,
        )
        message.ack()

    @contextlib.contextmanager
    def extra_context(self, connection: Connection, channel: Channel) -> Iterator[None]:
        """A context entered once the consumers consume, and left when :meth:`run` ends."""
        yield

    def create_connection(self) -> Connection:
        """The connection :meth:`run` consumes on: a clone of :attr:`connection`."""
        return self.connection.clone()

    # -- running ----------------------------------------------------------------------------

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume until :attr:`should_stop` is set, reconnecting after failures.

        ``kwargs`` are passed on to :meth:`on_consume_ready`. Returns at once
        when :attr:`should_stop` is already set.

        Raises:
            OperationalError: ``connect_max_retries`` connects failed in a row.
            ChannelError: a channel failed (kombu would start over).
        """
        if self.should_stop:
            return
        policy = DEFAULT_LOOP_POLICY
        if self.connect_max_retries is not None:
            policy = policy.replace(max_retries=self.connect_max_retries)
        with self.create_connection() as conn:
            channels: list[Channel] = []
            with contextlib.ExitStack() as ready:

                def start(channel: Channel) -> list[Consumer]:
                    self.on_connection_revived()
                    factory = functools.partial(
                        Consumer, channel, on_decode_error=self.on_decode_error
                    )
                    consumers = list(self.get_consumers(factory, channel))
                    for consumer in consumers:
                        consumer.consume()
                    channels.append(channel)
                    ready.enter_context(self.extra_context(conn, channel))
                    self.on_consume_ready(conn, channel, consumers, **kwargs)
                    return consumers

                loop = ConsumerLoop(
                    conn,
                    start,
                    policy=policy,
                    on_revive=lambda _conn: self.on_connection_revived(),
                    on_connect_error=self.on_connection_error,
                    should_stop=lambda: self.should_stop,
                    on_iteration=self.on_iteration,
                )
                loop.run(handle_signals=False)
            if channels:
                self.on_consume_end(conn, channels[0])


class ConsumerProducerMixin(ConsumerMixin):
    """:class:`ConsumerMixin` with :attr:`producer`, publishing on a connection of its own.

    Publishing on the consuming connection could block consumption while the
    broker applies flow control; the producer connection is a second clone,
    connected on first use and closed when :meth:`run` ends.
    """

    _producer_connection: Connection | None = None

    @property
    def producer_connection(self) -> Connection:
        """The connection :attr:`producer` publishes on (connected on first use)."""
        conn = self._producer_connection
        if conn is None:
            conn = self.connection.clone()
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries)
            self._producer_connection = conn
        return conn

    @property
    def producer(self) -> Producer:
        """A :class:`broker.Producer` on :attr:`producer_connection`."""
        return Producer(self.producer_connection)

    def on_consume_end(self, connection: Connection, channel: Channel) -> None:
        """Close the producer connection (call this when you override it)."""
        conn, self._producer_connection = self._producer_connection, None
        if conn is not None:
            conn.close()
