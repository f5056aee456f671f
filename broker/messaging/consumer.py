"""Consumer: receive messages from one or more queues.

Deliveries are handed out while the connection is read
(``connection.drain_events()``), on the thread that drains for the consumer
(on ``amqp://``: the thread that used the consumer's channel last, if it
drains; see ``docs/consuming.rst``). Each one becomes a
:class:`~broker.messaging.message.Message`; ``on_message(message)`` gets it as is, or
else every callback gets ``(payload, message)`` with the payload decoded
(honouring ``accept``).

A consuming consumer is recorded in ``connection.topology``: after a
reconnect the connection revives it (:meth:`Consumer.revive`) and it consumes
again, under the same consumer tags, into the same callbacks.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from broker.entities.owner import ChannelOwner, as_owner, owner_of
from broker.entities.queue import Queue, maybe_declare
from broker.errors import BrokerError, ChannelError, ConfigurationError
from broker.instrumentation import hooks as instrumentation
from broker.messaging.message import Message
from broker.messaging.serialization import prepare_accept

__all__ = ["Consumer"]

#: ``callback(payload, message)``.
Callback = Callable[[Any, Message], Any]


class Consumer:
    """Consumes from queues into callbacks.

    Args:
        channel: a channel, or a :class:`broker.Connection` (its default channel).
        queues: a :class:`~broker.entities.queue.Queue` or a list of them (copies are
            bound to the channel; the originals are not touched).
        callbacks: ``callback(payload, message)`` functions, called in order.
        on_message: ``on_message(message)``; replaces the callbacks and leaves
            decoding to you (``message.payload``).
        accept: serializer names or content types whose decoders may run
            (default json, text and raw; pickle only when listed). Content no
            registered serializer decodes (``application/octet-stream``,
            ``image/png``...) is delivered as bytes whatever this says.
        prefetch_count: most unacknowledged messages in flight to this consumer.
        no_ack: the broker settles messages on delivery (no acks).
        auto_declare: declare the queues (with their exchanges and bindings).
        tag_prefix: consumer tags are ``<tag_prefix><n>``; random when omitted.
        on_decode_error: ``on_decode_error(message, exc)`` when the payload does
            not decode; without it the error propagates from ``drain_events``.
        connection: the :class:`broker.Connection` ``channel`` belongs to, when
            the channel cannot tell.
    """

    def __init__(
        self,
        channel: Any,
        queues: Queue | Sequence[Queue] | None = None,
        *,
        callbacks: Iterable[Callback] | None = None,
        on_message: Callable[[Message], Any] | None = None,
        accept: Iterable[str] | None = None,
        prefetch_count: int | None = None,
        no_ack: bool | None = None,
        auto_declare: bool = True,
        tag_prefix: str | None = None,
        on_decode_error: Callable[[Message, Exception], Any] | None = None,
        connection: ChannelOwner | None = None,
    ) -> None:
        self.callbacks: list[Callback] = list(callbacks or ())
        self.on_message = on_message
        self.accept = prepare_accept(accept)
        self.prefetch_count = prefetch_count
        self.no_ack = no_ack
        self.auto_declare = auto_declare
        self.on_decode_error = on_decode_error
        self._tag_base = tag_prefix if tag_prefix is not None else secrets.token_hex(4) + "."
        self._counter = itertools.count(1)
        self._tags: dict[int, str] = {}  # id(queue) -> consumer tag, kept across revives
        self._active: dict[int, str] = {}  # id(queue) -> tag, consuming now
        self._qos: tuple[int, int, bool] | None = None
        self._owns_channel = False
        owner = as_owner(channel)
        self._connection: ChannelOwner | None
        if owner is not None:
            self._connection = owner
            self._uses_default = True
            channel = owner.default_channel
        else:
            self._connection = connection if connection is not None else owner_of(channel)
            self._uses_default = False
        self.channel: Any = channel
        if isinstance(queues, Queue):
            queues = [queues]
        self.queues: list[Queue] = [q.bind(channel, self._connection) for q in queues or ()]
        if auto_declare:
            self.declare()

    @property
    def connection(self) -> ChannelOwner | None:
        """The :class:`broker.Connection`, if known."""
        return self._connection

    # -- setup --------------------------------------------------------------------

    def declare(self) -> None:
        """Declare every queue (with exchanges and bindings) not yet declared."""
        for queue in self.queues:
            maybe_declare(queue)

    def register_callback(self, callback: Callback) -> None:
        """Add ``callback(payload, message)``."""
        self.callbacks.append(callback)

    def add_queue(self, queue: Queue) -> Queue:
        """Add a queue (declared if ``auto_declare``); :meth:`consume` starts it."""
        bound = queue.bind(self.channel, self._connection)
        if self.auto_declare:
            maybe_declare(bound)
        self.queues.append(bound)
        return bound

    def qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, apply_global: bool = False
    ) -> None:
        """Limit unacknowledged deliveries (kept and applied again after a revive)."""
        self._qos = (prefetch_size, prefetch_count, apply_global)
        self.channel.basic_qos(prefetch_size, prefetch_count, apply_global)

    def recover(self, requeue: bool = False) -> None:
        """Ask the broker to redeliver this channel's unacknowledged messages."""
        self.channel.basic_recover(requeue=requeue)

    def purge(self) -> int:
        """Remove every ready message from the queues; return how many."""
        return sum(queue.purge() for queue in self.queues)

    # -- consuming ----------------------------------------------------------------

    def consume(self, no_ack: bool | None = None) -> None:
        """Start consuming from every queue not consumed yet (idempotent)."""
        if self._qos is None and self.prefetch_count is not None:
            self.qos(prefetch_count=self.prefetch_count)
        for queue in self.queues:
            if id(queue) not in self._active:
                self._basic_consume(queue, no_ack)
        if self._connection is not None and self._active:
            self._connection.topology.record_consumer(self)

    def _basic_consume(self, queue: Queue, no_ack: bool | None) -> None:
        if no_ack is None:
            no_ack = self.no_ack if self.no_ack is not None else queue.no_ack
        key = id(queue)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = f"{self._tag_base}{next(self._counter)}"
        self.channel.basic_consume(
            queue=queue.name,
            consumer_tag=tag,
            no_ack=no_ack,
            callback=self._callback_for(self.channel, no_ack, queue.name),
            arguments=queue.consumer_arguments,
            on_cancel=self._on_broker_cancel,
        )
        self._active[key] = tag

    def _callback_for(self, channel: Any, no_ack: bool, queue: str) -> Callable[[Any], None]:
        # Bound to the channel of this basic_consume: acks must go back there,
        # even if the consumer has moved on to another channel since.
        receive, accept = self._receive, self.accept

        def on_delivery(raw: Any) -> None:
            if instrumentation.active is not None:
                message = Message(raw, channel, accept, no_ack)
                instrumentation.active.process(self._connection, raw, queue,
                                               functools.partial(receive, message))  # fmt: skip
                return
            on_message = self.on_message
            if on_message is not None:
                on_message(Message(raw, channel, accept, no_ack))
            else:
                receive(Message(raw, channel, accept, no_ack))

        return on_delivery

    def _receive(self, message: Message) -> None:
        on_message = self.on_message
        if on_message is not None:
            on_message(message)
            return
        try:
            payload = message.payload
        except BrokerError as exc:
            if self.on_decode_error is None:
                raise
            self.on_decode_error(message, exc)
            return
        self.receive(payload, message)

    def receive(self, body: Any, message: Message) -> None:
        """Call every callback with ``(body, message)``.

        Raises:
            ConfigurationError: the consumer has neither callbacks nor on_message.
        """
        callbacks = self.callbacks
        if not callbacks:
            raise ConfigurationError(
                f"{self!r} received a message but has no callbacks: pass callbacks= or on_message="
            )
        for callback in callbacks:
            callback(body, message)

    def _on_broker_cancel(self, tag: str) -> None:
        # The broker cancelled us (queue deleted): forget the tag so that a
        # later consume() starts again, and let recovery skip it.
        for key, active in list(self._active.items()):
            if active == tag:
                del self._active[key]
        if not self._active and self._connection is not None:
            self._connection.topology.forget_consumer(self)

    def consuming_from(self, queue: Queue | str) -> bool:
        """Whether the consumer is consuming from ``queue`` (an object or a name)."""
        name = queue.name if isinstance(queue, Queue) else queue
        return any(q.name == name and id(q) in self._active for q in self.queues)

    def cancel_by_queue(self, queue: Queue | str) -> None:
        """Stop consuming from one queue (it stays in :attr:`queues`)."""
        name = queue.name if isinstance(queue, Queue) else queue
        for q in self.queues:
            if q.name == name and id(q) in self._active:
                self._cancel(q)
        if not self._active and self._connection is not None:
            self._connection.topology.forget_consumer(self)

    def cancel(self) -> None:
        """Stop consuming from every queue (messages not acked yet stay unacked)."""
        for queue in self.queues:
            if id(queue) in self._active:
                self._cancel(queue)
        if self._connection is not None:
            self._connection.topology.forget_consumer(self)

    def _cancel(self, queue: Queue) -> None:
        tag = self._active.pop(id(queue))
        if self.channel.is_open:
            self.channel.basic_cancel(tag)
        if queue.auto_delete and self._connection is not None:
            # The broker deletes it with its last consumer: do not bring it back.
            self._connection.topology.forget_queue(queue)

    @property
    def is_consuming(self) -> bool:
        """Whether any queue is being consumed."""
        return bool(self._active)

    # -- recovery -----------------------------------------------------------------

    def revive(self, channel: Any) -> None:
        """Move to a new channel or connection, consuming again if we were.

        Given a connection, the consumer takes its default channel if it was
        made from a connection, else a new channel of its own. Queues keep
        their objects (and server-assigned names) and consumers their tags.
        """
        conn = as_owner(channel)
        if conn is not None:
            if self._uses_default:
                channel = conn.default_channel
                owns = False
            else:
                channel, owns = conn.channel(), True
        else:
            conn = owner_of(channel) or self._connection
            owns = False
        old = self.channel
        if channel is old and old.is_open:
            return
        was_consuming = bool(self._active)
        self._drop_channel(old)
        self.channel, self._connection, self._owns_channel = channel, conn, owns
        for queue in self.queues:
            queue.revive(channel, conn)
        if self.auto_declare:
            self.declare()
        if self._qos is not None:
            self.channel.basic_qos(*self._qos)
        if was_consuming:
            self.consume()

    def _drop_channel(self, old: Any) -> None:
        active, self._active = self._active, {}
        if old is None or not old.is_open:
            return
        with contextlib.suppress(BrokerError):
            if self._owns_channel:
                old.close()
            else:
                for tag in active.values():
                    old.basic_cancel(tag)

    def close(self) -> None:
        """Cancel, and close the channel if the consumer opened it."""
        try:
            with contextlib.suppress(ChannelError):
                self.cancel()
        finally:
            if self._owns_channel:
                self._drop_channel(self.channel)

    def __enter__(self) -> Consumer:
        self.consume()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(BrokerError):
            self.cancel()

    def __repr__(self) -> str:
        names = [q.name for q in self.queues]
        return (
            f"<Consumer queues={names!r} consuming={len(self._active)} "
            f"chan:{self.channel.channel_id}>"
        )
