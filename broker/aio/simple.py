"""SimpleQueue and SimpleBuffer for asyncio: ``await sq.put(x)``, ``await sq.get(timeout=1)``.

As :mod:`broker.messaging.simple`: ``conn.SimpleQueue('tasks')`` declares a
durable direct exchange and a durable queue, both named ``tasks``, bound with
the routing key ``tasks``; :meth:`SimpleQueue.get` consumes (on a channel of
its own) and waits without polling; messages must be acked
(``await message.ack()``). ``conn.SimpleBuffer(name)`` is the transient
variant: auto-deleted, non-durable, settled on delivery.

``get()`` without a timeout waits as long as it takes, like
:meth:`asyncio.Queue.get`; cancelling it loses no message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from broker.aio.consumer import Consumer
from broker.aio.declare import maybe_declare
from broker.aio.message import Message
from broker.aio.producer import Producer
from broker.entities.queue import Queue
from broker.messaging import simple as _sync
from broker.messaging.simple import Empty

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["Empty", "SimpleBuffer", "SimpleQueue"]


class SimpleQueue:
    """A broker queue with ``put``/``get``; the arguments are :class:`broker.SimpleQueue`'s."""

    Empty: ClassVar[type[Empty]] = Empty
    #: Settle messages on delivery: the default when the constructor is not told.
    no_ack: bool = _sync.SimpleQueue.no_ack
    queue_args: ClassVar[Mapping[str, Any]] = _sync.SimpleQueue.queue_args
    queue_opts: ClassVar[Mapping[str, Any]] = _sync.SimpleQueue.queue_opts
    exchange_opts: ClassVar[Mapping[str, Any]] = _sync.SimpleQueue.exchange_opts

    def __init__(
        self,
        connection: Connection,
        name: str | Queue,
        no_ack: bool | None = None,
        queue_opts: Mapping[str, Any] | None = None,
        queue_args: Mapping[str, Any] | None = None,
        exchange_opts: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        compression: str | None = None,
        accept: Iterable[str] | None = None,
    ) -> None:
        self.connection = connection
        self.no_ack = type(self).no_ack if no_ack is None else no_ack
        queue, exchange, routing_key = _sync.simple_entities(
            name,
            {**self.queue_opts, **(queue_opts or {})},
            {**self.queue_args, **(queue_args or {})},
            {**self.exchange_opts, **(exchange_opts or {})},
        )
        self.consumer = Consumer(connection, queue, accept=accept, no_ack=self.no_ack)
        self.queue = self.consumer.queues[0]
        self.producer = Producer(
            connection, exchange=exchange, routing_key=routing_key, serializer=serializer,
            compression=compression,
        )  # fmt: skip

    @property
    def name(self) -> str:
        """The queue's name."""
        return self.queue.name

    async def put(self, message: Any, **kwargs: Any) -> None:
        """Publish ``message`` to the queue (keywords of :meth:`broker.aio.Producer.publish`)."""
        await self.producer.publish(message, declare=[self.queue], **kwargs)

    async def get(self, block: bool = True, timeout: float | None = None) -> Message:
        """Return the next message, waiting up to ``timeout`` seconds (``None``: no limit).

        Raises:
            SimpleQueue.Empty: nothing arrived in time (at once when ``block`` is
                False and nothing is ready).
        """
        if not block:
            return await self.get_nowait()
        try:
            return await self.consumer.get(timeout=timeout)
        except TimeoutError:
            raise self.Empty(f"no message in {self.name!r} within {timeout:g} s") from None

    async def get_nowait(self) -> Message:
        """Return a message if one is ready now.

        Raises:
            SimpleQueue.Empty: the queue is empty.
        """
        ready = self.consumer.take_ready()
        if ready is not None:
            return ready
        channel = await self.connection.default_channel()
        await maybe_declare(self.queue, channel, self.connection)
        raw = await channel.basic_get(queue=self.name, no_ack=self.no_ack)
        if raw is None:
            raise self.Empty(f"{self.name!r} is empty")
        return Message(raw, channel, self.consumer.accept, self.no_ack)

    async def qsize(self) -> int:
        """Messages ready in the broker's queue (not counting those received here)."""
        channel = await self.connection.default_channel()
        await maybe_declare(self.queue, channel, self.connection)
        ok = await channel.queue_declare(queue=self.name, passive=True)
        return ok.message_count if ok is not None else 0

    async def clear(self) -> int:
        """Remove every ready message; return how many."""
        channel = await self.connection.default_channel()
        return await channel.queue_purge(queue=self.name) or 0

    async def close(self) -> None:
        """Stop consuming and release the channels."""
        await self.consumer.close()
        await self.producer.close()

    async def __aenter__(self) -> SimpleQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<aio.{type(self).__name__} {self.name!r} ready={self.consumer.ready()}>"


class SimpleBuffer(SimpleQueue):
    """A transient :class:`SimpleQueue`: auto-deleted, non-durable, settled on delivery."""

    no_ack: bool = _sync.SimpleBuffer.no_ack
    queue_args: ClassVar[Mapping[str, Any]] = _sync.SimpleBuffer.queue_args
    queue_opts: ClassVar[Mapping[str, Any]] = _sync.SimpleBuffer.queue_opts
    exchange_opts: ClassVar[Mapping[str, Any]] = _sync.SimpleBuffer.exchange_opts
