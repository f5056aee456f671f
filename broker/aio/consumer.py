"""The asyncio Consumer: ``async for message in consumer``, or callbacks (plain or async).

Deliveries arrive on the event loop as the connection reads them and go to
the consumer's inbox (an :class:`asyncio.Queue`, bounded in practice by
``prefetch_count``). Then either:

* ``async for message in consumer:`` takes them in order (a consumer without
  callbacks); the loop ends when the consumer is cancelled, by you or by the
  broker (its queue was deleted), and raises if the connection could not be
  recovered; or
* a dispatcher task calls ``on_message(message)``, or every
  ``callback(payload, message)`` with the decoded payload, one message at a
  time, awaiting callbacks that are coroutine functions. A callback that
  raises is logged (the message stays unacked) and the next one runs.

A consumer opens a channel of its own (its prefetch and acks are its own)
unless given one. While it consumes it is recorded by its connection: after
a reconnect it is revived on a new channel and consumes again, under the same
tags, into the same inbox and callbacks. Messages received on the old
channel can no longer be acked (the broker redelivers them).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from broker.aio.declare import maybe_declare
from broker.aio.message import Message
from broker.entities.queue import Queue
from broker.errors import BrokerError, ChannelError, ConfigurationError
from broker.instrumentation import hooks as instrumentation
from broker.messaging.serialization import prepare_accept
from transports.base_aio import AsyncChannel, TimeSlice

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["Consumer"]

logger = logging.getLogger(__name__)

#: ``callback(payload, message)``; may be a coroutine function.
Callback = Callable[[Any, Message], Any]

_END: Any = object()  # inbox sentinel: consuming stopped


class Consumer:
    """Consumes from queues into an async iterator or callbacks.

    Args:
        connection: the :class:`broker.aio.Connection`.
        queues: a :class:`~broker.entities.queue.Queue` or a list of them
            (copies are used; the originals are not touched).
        channel: consume on this channel instead of one of its own.
        callbacks: ``callback(payload, message)`` functions or coroutine
            functions; ``on_message``, ``accept``, ``prefetch_count``,
            ``no_ack``, ``auto_declare``, ``tag_prefix`` and
            ``on_decode_error`` mean what they mean for :class:`broker.Consumer`
            (``on_message`` and ``on_decode_error`` may be coroutine functions too).
    """

    def __init__(
        self,
        connection: Connection,
        queues: Queue | Sequence[Queue] | None = None,
        *,
        channel: AsyncChannel | None = None,
        callbacks: Iterable[Callback] | None = None,
        on_message: Callable[[Message], Any] | None = None,
        accept: Iterable[str] | None = None,
        prefetch_count: int | None = None,
        no_ack: bool | None = None,
        auto_declare: bool = True,
        tag_prefix: str | None = None,
        on_decode_error: Callable[[Message, Exception], Any] | None = None,
    ) -> None:
        self.connection = connection
        self.callbacks: list[Callback] = list(callbacks or ())
        self.on_message = on_message
        self.accept = prepare_accept(accept)
        self.prefetch_count = prefetch_count
        self.no_ack = no_ack
        self.auto_declare = auto_declare
        self.on_decode_error = on_decode_error
        if isinstance(queues, Queue):
            queues = [queues]
        self.queues: list[Queue] = [copy.copy(q) for q in queues or ()]
        self.channel: AsyncChannel | None = channel
        self._owns_channel = channel is None
        self._tag_base = tag_prefix if tag_prefix is not None else secrets.token_hex(4) + "."
        self._counter = itertools.count(1)
        self._tags: dict[int, str] = {}  # id(queue) -> consumer tag, kept across revives
        self._active: dict[int, str] = {}  # id(queue) -> tag, consuming now
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        # Taking a message already received never waits: yield now and then.
        self._slice = TimeSlice()

    # -- setup --------------------------------------------------------------------

    async def _channel(self) -> AsyncChannel:
        channel = self.channel
        if channel is None or not channel.is_open:
            if not self._owns_channel and channel is not None:
                return channel  # the caller's channel: its error says what happened
            channel = self.channel = await self.connection.channel()
            if self.prefetch_count is not None:
                await channel.basic_qos(0, self.prefetch_count, False)
        return channel

    async def declare(self) -> None:
        """Declare every queue (with exchanges and bindings) not yet declared."""
        channel = await self._channel()
        for queue in self.queues:
            await maybe_declare(queue, channel, self.connection)

    async def qos(self, prefetch_count: int) -> None:
        """Limit unacknowledged deliveries to this consumer's channel (kept across revives)."""
        self.prefetch_count = prefetch_count
        await (await self._channel()).basic_qos(0, prefetch_count, False)

    # -- consuming ----------------------------------------------------------------

    async def consume(self, no_ack: bool | None = None) -> None:
        """Start consuming from every queue not consumed yet (idempotent)."""
        channel = await self._channel()
        if self.auto_declare:
            await self.declare()
        for queue in self.queues:
            if id(queue) not in self._active:
                await self._basic_consume(channel, queue, no_ack)
        if self._active:
            self.connection.record_consumer(self)
            if (self.callbacks or self.on_message is not None) and self._dispatcher is None:
                self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def _basic_consume(
        self, channel: AsyncChannel, queue: Queue, no_ack: bool | None
    ) -> None:
        if no_ack is None:
            no_ack = self.no_ack if self.no_ack is not None else queue.no_ack
        key = id(queue)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = f"{self._tag_base}{next(self._counter)}"
        inbox, accept = self._inbox, self.accept

        def on_delivery(raw: Any) -> None:
            inbox.put_nowait(Message(raw, channel, accept, no_ack))

        await channel.basic_consume(
            queue=queue.name, consumer_tag=tag, no_ack=no_ack, callback=on_delivery,
            arguments=queue.consumer_arguments, on_cancel=self._on_broker_cancel,
        )  # fmt: skip
        self._active[key] = tag

    def _on_broker_cancel(self, tag: str) -> None:
        # The broker cancelled us (queue deleted): forget the tag, so a later
        # consume() starts again and recovery skips it.
        for key, active in list(self._active.items()):
            if active == tag:
                del self._active[key]
        if not self._active:
            self.connection.forget_consumer(self)
            self._inbox.put_nowait(_END)

    def recovery_failed(self, exc: BaseException) -> None:
        """The connection could not be recovered: iteration raises ``exc``."""
        self._active.clear()
        self._inbox.put_nowait(exc)

    @property
    def is_consuming(self) -> bool:
        """Whether any queue is being consumed."""
        return bool(self._active)

    def consuming_from(self, queue: Queue | str) -> bool:
        """Whether the consumer is consuming from ``queue`` (an object or a name)."""
        name = queue.name if isinstance(queue, Queue) else queue
        return any(q.name == name and id(q) in self._active for q in self.queues)

    async def cancel(self) -> None:
        """Stop consuming (messages not acked yet stay unacked); iteration ends."""
        channel = self.channel
        active, self._active = self._active, {}
        self.connection.forget_consumer(self)
        if channel is not None and channel.is_open:
            for tag in active.values():
                with contextlib.suppress(ChannelError):
                    await channel.basic_cancel(tag)
        if active:
            self._inbox.put_nowait(_END)

    # -- receiving ----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Message]:
        if self.callbacks or self.on_message is not None:
            raise ConfigurationError(
                f"{self!r} hands its messages to callbacks: iterate a consumer without them"
            )
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        if not self._active and self._inbox.empty():  # not after a cancel it has yet to report
            await self.consume()
        while True:
            if self._slice.due():
                await asyncio.sleep(0)
            item = await self._inbox.get()
            if item is _END:
                if not self._active:
                    return
                continue
            if isinstance(item, BaseException):
                raise item
            if instrumentation.active is not None:
                self._report_received(instrumentation.active, item)
            yield item

    async def get(self, timeout: float | None = None) -> Message:
        """The next message (consuming first if needed), waiting up to ``timeout`` seconds.

        Raises:
            TimeoutError: nothing arrived in time.
        """
        if not self._active and self._inbox.empty():
            await self.consume()
        async with asyncio.timeout(timeout):
            while True:
                if self._slice.due():
                    await asyncio.sleep(0)
                # Cancelling here leaves the message in the inbox (asyncio.Queue.get is safe).
                item = await self._inbox.get()
                if isinstance(item, BaseException):
                    raise item
                if item is not _END:
                    message: Message = item
                    if instrumentation.active is not None:
                        self._report_received(instrumentation.active, message)
                    return message

    def ready(self) -> int:
        """How many received messages wait in the inbox."""
        return self._inbox.qsize()

    def take_ready(self) -> Message | None:
        """A received message if one waits in the inbox, else ``None`` (no waiting)."""
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if isinstance(item, Message):
                if instrumentation.active is not None:
                    self._report_received(instrumentation.active, item)
                return item
        return None

    async def _dispatch(self) -> None:
        while True:
            item = await self._inbox.get()
            if item is _END or isinstance(item, BaseException):
                if not self._active:
                    self._dispatcher = None
                    return
                continue
            try:
                if instrumentation.active is not None:
                    await instrumentation.active.process_async(self.connection, item.raw,
                        self._queue_of(item), functools.partial(self._deliver, item))  # fmt: skip
                else:
                    await self._deliver(item)
            except Exception:
                logger.exception("%r: a callback failed on %r", self, item)

    def _queue_of(self, message: Message) -> str:
        """The name of the queue ``message`` was consumed from (by its consumer tag)."""
        tag = message.delivery_info.get("consumer_tag")
        for queue in self.queues:
            if self._tags.get(id(queue)) == tag:
                return queue.name
        return ""

    def _report_received(self, hooks: instrumentation.Hooks, message: Message) -> None:
        hooks.received(self.connection, message.raw, self._queue_of(message))

    async def _deliver(self, message: Message) -> None:
        on_message = self.on_message
        if on_message is not None:
            await _settle(on_message(message))
            return
        try:
            payload = message.payload
        except BrokerError as exc:
            if self.on_decode_error is None:
                raise
            await _settle(self.on_decode_error(message, exc))
            return
        for callback in self.callbacks:
            await _settle(callback(payload, message))

    def register_callback(self, callback: Callback) -> None:
        """Add ``callback(payload, message)`` (plain or async)."""
        self.callbacks.append(callback)

    # -- recovery -----------------------------------------------------------------

    async def revive(self, channel: Any) -> None:
        """Move to a new channel of the (reconnected) connection, consuming again if it was.

        The inbox, the tags and the callbacks stay; messages from the old
        channel can no longer be acked.
        """
        was_consuming = bool(self._active)
        self._active = {}
        if self._owns_channel:
            self.channel = None
        elif isinstance(channel, AsyncChannel):
            self.channel = channel
        if was_consuming:
            await self.consume()

    async def close(self) -> None:
        """Cancel, stop the dispatcher and close the channel if the consumer opened it."""
        try:
            with contextlib.suppress(BrokerError):
                await self.cancel()
        finally:
            dispatcher, self._dispatcher = self._dispatcher, None
            if dispatcher is not None:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher
            channel = self.channel
            if self._owns_channel and channel is not None and channel.is_open:
                with contextlib.suppress(BrokerError):
                    await channel.close()

    async def __aenter__(self) -> Consumer:
        await self.consume()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        names = [q.name for q in self.queues]
        chan = f"chan:{self.channel.channel_id}" if self.channel is not None else "unbound"
        return (
            f"<aio.Consumer queues={names!r} consuming={len(self._active)} "
            f"inbox={self._inbox.qsize()} {chan}>"
        )


async def _settle(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
