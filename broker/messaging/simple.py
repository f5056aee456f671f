"""SimpleQueue and SimpleBuffer: a queue.Queue-like interface over a broker queue.

``conn.SimpleQueue('tasks')`` declares a durable direct exchange and a durable
queue, both named ``tasks``, bound with the routing key ``tasks``, on a
channel of its own. :meth:`SimpleQueue.get` consumes and waits on the
connection with the time left (no polling); messages must be acked.
``conn.SimpleBuffer(name)`` is the transient variant: auto-deleted, non-durable,
messages settled on delivery (``no_ack``).

``get()`` without a timeout waits as long as it takes, like
:meth:`queue.Queue.get`; pass ``timeout=`` for a bounded wait.
"""

from __future__ import annotations

import collections
import contextlib
import queue as _queue
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar

from broker.entities.owner import ChannelOwner, as_owner, owner_of
from broker.entities.queue import Exchange, Queue
from broker.errors import BrokerError, ConfigurationError
from broker.messaging.consumer import Consumer
from broker.messaging.message import Message
from broker.messaging.producer import Producer
from broker.timeouts import check_timeout

__all__ = ["Empty", "SimpleBuffer", "SimpleQueue", "simple_entities"]


def simple_entities(
    name: str | Queue,
    queue_opts: Mapping[str, Any],
    queue_args: Mapping[str, Any] | None,
    exchange_opts: Mapping[str, Any],
) -> tuple[Queue, Exchange, str]:
    """The queue, exchange and routing key of a simple queue named ``name``.

    A name gives an exchange and a queue both called so, bound with the name
    as the routing key (``queue_args`` become the queue's ``queue_arguments``);
    a :class:`~broker.entities.queue.Queue` is used as it is. Shared with
    :mod:`broker.aio.simple`.

    Raises:
        ConfigurationError: ``name`` is neither a non-empty str nor a Queue.
    """
    if isinstance(name, Queue):
        return name, name.exchange or Exchange(""), name.routing_key or name.name
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"name must be a non-empty str or a Queue, got {name!r}")
    exchange = Exchange(name, **exchange_opts)
    qopts = dict(queue_opts)
    if queue_args:
        qopts["queue_arguments"] = queue_args
    return Queue(name, exchange, name, **qopts), exchange, name


class Empty(_queue.Empty, BrokerError):
    """No message arrived in time (also a :class:`queue.Empty`)."""


class SimpleQueue:
    """A broker queue with ``put``/``get``.

    Args:
        channel: a :class:`broker.Connection` (a channel of its own is opened
            and closed with the queue) or a channel.
        name: the queue name, or a :class:`~broker.entities.queue.Queue` to use as is.
        no_ack: settle messages on delivery (default: ack them yourself).
        queue_opts: keyword arguments for the :class:`~broker.entities.queue.Queue`.
        queue_args: ``queue_arguments`` for it.
        exchange_opts: keyword arguments for the :class:`~broker.entities.exchange.Exchange`.
        serializer, compression: defaults for :meth:`put`.
        accept: what :attr:`Message.payload <broker.messaging.message.Message.payload>` may decode.
    """

    Empty: ClassVar[type[Empty]] = Empty
    #: Settle messages on delivery. The class attribute is the default when
    #: the constructor is not told (override it in a subclass, as in kombu).
    no_ack: bool = False
    #: Defaults for ``queue_opts``, ``queue_args`` and ``exchange_opts``; the
    #: constructor's arguments are merged over them.
    queue_opts: ClassVar[Mapping[str, Any]] = {}
    queue_args: ClassVar[Mapping[str, Any]] = {}
    exchange_opts: ClassVar[Mapping[str, Any]] = {"type": "direct"}

    def __init__(
        self,
        channel: Any,
        name: str | Queue,
        no_ack: bool | None = None,
        queue_opts: Mapping[str, Any] | None = None,
        queue_args: Mapping[str, Any] | None = None,
        exchange_opts: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        compression: str | None = None,
        accept: Iterable[str] | None = None,
    ) -> None:
        owner = as_owner(channel)
        if owner is not None:
            channel = owner.channel()
            self._owns_channel = True
        else:
            owner = owner_of(channel)
            self._owns_channel = False
        if owner is None:
            raise ConfigurationError(
                "SimpleQueue needs a broker.Connection (or a channel opened by one) "
                "to wait for messages on"
            )
        self._connection: ChannelOwner = owner
        self.channel = channel
        if no_ack is None:
            no_ack = type(self).no_ack
        queue, exchange, routing_key = simple_entities(
            name,
            {**self.queue_opts, **(queue_opts or {})},
            {**self.queue_args, **(queue_args or {})},
            {**self.exchange_opts, **(exchange_opts or {})},
        )
        self.buffer: collections.deque[Message] = collections.deque()
        self.producer = Producer(
            channel,
            exchange=exchange,
            routing_key=routing_key,
            serializer=serializer,
            compression=compression,
            connection=self._connection,
        )
        self.consumer = Consumer(
            channel,
            queue,
            on_message=self.buffer.append,
            accept=accept,
            no_ack=no_ack,
            connection=self._connection,
        )
        self.no_ack = no_ack
        self.queue = self.consumer.queues[0]

    @property
    def name(self) -> str:
        """The queue's name."""
        return self.queue.name

    # -- put / get --------------------------------------------------------------------

    def put(
        self,
        message: Any,
        serializer: str | None = None,
        headers: Mapping[str, Any] | None = None,
        compression: str | None = None,
        routing_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Publish ``message`` to the queue (see :meth:`broker.Producer.publish`)."""
        channel = self.consumer.channel
        if channel is not self.channel:
            # The connection's recovery moved the consumer to a new channel.
            self.channel = channel
            self.producer.revive(channel)
        if serializer is None and headers is None and compression is None and not kwargs:
            self.producer.publish(message, routing_key)
            return
        self.producer.publish(
            message,
            serializer=serializer,
            headers=headers,
            compression=compression,
            routing_key=routing_key,
            **kwargs,
        )

    def get(self, block: bool = True, timeout: float | None = None) -> Message:
        """Return the next message, waiting up to ``timeout`` seconds (``None``: no limit).

        Raises:
            SimpleQueue.Empty: nothing arrived in time (at once when ``block`` is False
                and the queue is empty).
            ConfigurationError: ``timeout`` is not ``None`` or a number of seconds >= 0
                (``nan``, a string).
        """
        timeout = check_timeout(timeout)
        buffer = self.buffer
        if buffer:
            return buffer.popleft()
        if not block:
            return self.get_nowait()
        if not self.consumer.is_consuming:
            self.consumer.consume()
        drain = self._connection.drain_events
        if timeout is None:
            while not buffer:
                drain(timeout=None)
            return buffer.popleft()
        deadline = time.monotonic() + timeout
        remaining = timeout  # the first wait needs no second clock read
        while True:
            if remaining <= 0:
                raise self.Empty(f"no message in {self.name!r} within {timeout:g} s")
            try:
                drain(remaining)
            except TimeoutError:
                if not buffer:
                    raise self.Empty(f"no message in {self.name!r} within {timeout:g} s") from None
            if buffer:
                return buffer.popleft()
            remaining = deadline - time.monotonic()

    def get_nowait(self) -> Message:
        """Return a message if one is ready now.

        Raises:
            SimpleQueue.Empty: the queue is empty.
        """
        if self.buffer:
            return self.buffer.popleft()
        message = self.queue.get(no_ack=self.no_ack, accept=self.consumer.accept)
        if message is None:
            raise self.Empty(f"{self.name!r} is empty")
        return message

    # -- size -------------------------------------------------------------------------

    def qsize(self) -> int:
        """Messages waiting: ready in the broker plus received but not yet taken."""
        ok = self.queue.queue_declare(passive=True)
        return (ok.message_count if ok is not None else 0) + len(self.buffer)

    def __len__(self) -> int:
        return self.qsize()

    def __bool__(self) -> bool:
        # As in kombu: a queue object is always true, even when empty (len() is 0);
        # ``if queue:`` must not ask the broker for its size.
        return True

    def clear(self) -> int:
        """Drop every waiting message; return how many."""
        dropped = 0
        while self.buffer:
            message = self.buffer.popleft()
            if not message.acknowledged:
                message.ack()
            dropped += 1
        return dropped + self.queue.purge()

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop consuming; close the channel if the queue opened it.

        Received messages that were not acked go back to the queue.
        """
        with contextlib.suppress(BrokerError):
            self.consumer.close()  # cancels; closes a channel recovery gave it
        self.buffer.clear()
        self.producer.close()
        if self._owns_channel:
            with contextlib.suppress(BrokerError):
                self.channel.close()

    def __enter__(self) -> SimpleQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} buffered={len(self.buffer)}>"


class SimpleBuffer(SimpleQueue):
    """A transient :class:`SimpleQueue`: non-durable, auto-deleted, ``no_ack``."""

    no_ack: bool = True
    queue_opts: ClassVar[Mapping[str, Any]] = {"durable": False, "auto_delete": True}
    exchange_opts: ClassVar[Mapping[str, Any]] = {
        "type": "direct",
        "durable": False,
        "auto_delete": True,
        "delivery_mode": "transient",
    }
