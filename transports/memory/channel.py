"""The channel of the memory transport: py-amqp's methods on the in-process broker.

Each call takes the broker lock for its whole duration; a broker-side error
(a :class:`~broker.errors.ChannelError`) closes the channel before it reaches
the caller, as an AMQP channel exception does, and unacked messages go back
to their queues.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn, Self

from broker.errors import (
    AccessRefused,
    BrokerError,
    ChannelError,
    IrrecoverableChannelError,
    RecoverableConnectionError,
)
from transports import base
from transports._shared.replies import (
    channel_closed,
    check_exchange_type,
    not_found,
    not_implemented,
)
from transports._shared.unbuffered import UNBUFFERED
from transports._shared.validation import check_properties, check_route
from transports.memory.broker import (
    LOCK,
    ChannelCore,
    Consumer,
    Queue,
    Session,
    dispatch,
)
from transports.memory.exchange import route_all
from transports.memory.message import (
    Message,
    coerce_body,
    copy_table,
    known_properties,
    prepared,
    received,
)
from transports.memory.vhost import VHost

__all__ = ["MemoryChannel"]

#: How many accepted (exchange, routing key) pairs a channel remembers.
_ROUTES_KEPT = 64


_new_message = Message.__new__


class _Guard:
    """Holds the broker lock for one channel call; a ChannelError closes the channel."""

    __slots__ = ("channel",)

    def __init__(self, channel: MemoryChannel) -> None:
        self.channel = channel

    def __enter__(self) -> None:
        LOCK.acquire()
        if not self.channel._open:
            LOCK.release()
            raise self.channel._closed_error()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if isinstance(exc, ChannelError):
                self.channel.close_locked(str(exc))
        finally:
            LOCK.release()


class MemoryChannel(ChannelCore):
    """A channel on the memory broker.

    Implements :class:`transports.base.ConfirmingChannel`: publishes are
    confirmed synchronously, and there are no frames to buffer.

    Attributes:
        on_return: called as ``on_return(reply_code, reply_text, exchange,
            routing_key, message)`` for a ``mandatory`` message no queue took,
            before :meth:`basic_publish` returns.
        confirm_mode: set by :meth:`confirm_select`.
        confirm_listener: kept for whoever tracks this channel's confirms; never
            called, since every publish is confirmed when it returns.
        vhost: the virtual host its exchanges and queues live in.
    """

    __slots__ = (
        "_guard",
        "_routes",
        "confirm_listener",
        "confirm_mode",
        "on_return",
        "owner",
        "vhost",
    )

    def __init__(
        self, vhost: VHost, session: Session, channel_id: int, owner: object | None = None
    ) -> None:
        super().__init__(session, channel_id)
        self.vhost = vhost
        self.owner = owner
        self._guard = _Guard(self)
        self.on_return: base.ReturnCallback | None = None
        self.confirm_mode = False
        self.confirm_listener: base.ConfirmListener | None = None
        # Routes check_route accepted: a producer publishes to few, many times.
        self._routes: set[tuple[str, str]] = set()

    @property
    def is_open(self) -> bool:
        """True until this channel or its connection is closed."""
        return self._open

    def _fail_locked(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it (lock held)."""
        self.close_locked(str(exc))
        raise exc

    def _closed_error(self) -> BrokerError:
        if not self.session.open:
            return RecoverableConnectionError(
                f"the memory connection to vhost {self.vhost.name!r} is closed"
            )
        return channel_closed(self.channel_id, self.close_reason)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; its unacked messages return to their queues."""
        with LOCK:
            self.close_locked(None)

    # -- exchanges and queues ---------------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Declare an exchange (``passive``: only check that it exists)."""
        if not passive:
            check_exchange_type(type, exchange, "memory")
        with self._guard:
            if passive:
                self.vhost.exchange(exchange)
            else:
                self.vhost.declare_exchange(exchange, type, durable, auto_delete, arguments or {})

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        """Delete an exchange and its bindings (a missing one is not an error)."""
        with self._guard:
            self.vhost.delete_exchange(exchange, if_unused)

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Route what ``source`` takes by this binding on through ``destination``.

        Raises :class:`~broker.errors.NotFound` (closing the channel) when
        either exchange is missing.
        """
        with self._guard:
            self.vhost.bind_exchange(destination, source, routing_key, arguments or {})

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange binding (a missing binding or exchange is not an error)."""
        with self._guard:
            self.vhost.unbind_exchange(destination, source, routing_key, arguments or {})

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> base.QueueDeclareOk | None:
        """Declare a queue; ``queue=''`` gets a server-named ``amq.gen-...`` queue."""
        with self._guard:
            if passive:
                found = self.queue_locked(queue)
            else:
                found = self.vhost.declare_queue(
                    self.session, queue, durable, exclusive, auto_delete, arguments or {}
                )
            self.last_queue = found.name
            if nowait:
                return None
            return base.QueueDeclareOk(found.name, len(found.messages), len(found.consumers))

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        with self._guard:
            self.vhost.bind(self.queue_locked(queue), exchange, routing_key, arguments or {})

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a binding (a missing binding, exchange or queue is not an error)."""
        with self._guard:
            found = self.vhost.queues.get(queue or self.last_queue)
            if found is not None:
                self.vhost.unbind(
                    self.queue_locked(found.name), exchange, routing_key, arguments or {}
                )

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        """Drop a queue's ready messages; return how many (unacked ones stay)."""
        with self._guard:
            messages = self.queue_locked(queue).messages
            count = len(messages)
            messages.clear()
        return None if nowait else count

    def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        """Delete a queue; return how many ready messages it held (0 when missing)."""
        with self._guard:
            found = self.vhost.queues.get(queue or self.last_queue)
            count = 0
            if found is not None:
                self.queue_locked(found.name)
                count = self.vhost.delete_queue(found, if_unused, if_empty)
        return None if nowait else count

    # -- publishing -------------------------------------------------------------

    def prepare_message(self, body: bytes, **properties: Any) -> Message:
        """Build a message for :meth:`basic_publish`.

        Raises:
            broker.errors.ConfigurationError: a property or header RabbitMQ
                would refuse (see :mod:`transports._shared.validation`).
        """
        check_properties(properties)
        if type(body) is not bytes:
            return prepared(body, properties)
        # prepared(), inlined for the usual bytes body: a producer's every publish.
        message = _new_message(Message)
        message._checked = False  # unknown and None properties are dropped when read
        message._properties = properties
        message.body = body
        message.channel = None
        message.delivery_tag = 0
        message._info = None
        message._source = None
        return message

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Route a message to its queues now (raises NotFound for a missing exchange).

        Raises:
            broker.errors.ConfigurationError: ``exchange`` or ``routing_key`` is
                not a str of at most 255 bytes; nothing was routed.
        """
        route = (exchange, routing_key)
        try:
            known = route in self._routes
        except TypeError:  # an unhashable exchange or routing key: check_route says which
            known = False
        if not known:
            check_route(exchange, routing_key)
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
            self._routes.add(route)
        if immediate:
            with self._guard:
                raise not_implemented("immediate=true")
        # The snapshot, inlined: a shallow copy, and a deep one of the headers.
        if type(msg) is Message and msg._properties is not None:
            properties = dict(msg._properties)  # not yet checked, maybe: see Message
        else:
            properties = dict(msg.properties)
        headers = properties.get("application_headers")
        if headers:
            properties["application_headers"] = copy_table(headers)
        body = msg.body
        if type(body) is not bytes:
            properties = known_properties(properties)
            body = coerce_body(body, properties)
        # The hot path: the lock is taken inline rather than through the guard
        # (acquire/release in try/finally costs half of a ``with`` block).
        LOCK.acquire()
        try:
            if not self._open:
                raise self._closed_error()
            queues: Sequence[Queue]
            if exchange:
                found = self.vhost.exchanges.get(exchange)
                if found is None:
                    self._fail_locked(not_found("exchange", exchange, self.vhost.name))
                if found.outbound:  # exchange-to-exchange bindings: walk them
                    queues = route_all(found, routing_key, properties.get("application_headers"))
                elif found.type == "direct":
                    queues = found.direct_index.get(routing_key, ())
                else:
                    queues = found.route(routing_key, properties.get("application_headers"))
            else:
                target = self.vhost.queues.get(routing_key)
                queues = (target,) if target is not None else ()
            for queue in queues:
                queue.put(body, properties, exchange, routing_key)
        finally:
            LOCK.release()
        if not queues and mandatory and self.on_return is not None:
            returned = prepared(body, known_properties(properties))
            returned.channel = self
            returned.delivery_info = {"exchange": exchange, "routing_key": routing_key}
            self.on_return(312, "NO_ROUTE", exchange, routing_key, returned)

    @property
    def confirms_synchronously(self) -> bool:
        """True: a publish is confirmed when :meth:`basic_publish` returns."""
        return True

    def confirm_select(self, nowait: bool = False) -> None:
        """Enter confirm mode; memory publishes are confirmed when they return."""
        with self._guard:
            self.confirm_mode = True

    def wait_confirms(self, timeout: float) -> None:
        """Nothing to wait for: every publish was confirmed when it returned."""

    def buffered_writes(self) -> base.WriteHold:
        """Nothing to hold: publishes are routed when :meth:`basic_publish` returns."""
        return UNBUFFERED

    # -- consuming --------------------------------------------------------------

    def basic_get(self, queue: str = "", no_ack: bool = False) -> Message | None:
        """Take the next ready message, or return ``None`` when the queue is empty."""
        with LOCK:
            if not self._open:
                raise self._closed_error()
            found = self.vhost.queues.get(queue) if queue else None
            if found is None or (found.owner is not None and found.owner is not self.session):
                try:
                    found = self.queue_locked(queue)
                except ChannelError as exc:
                    self._fail_locked(exc)
            messages = found.messages
            if not messages:
                return None
            entry = messages.popleft()
            self.next_tag += 1
            tag = self.next_tag
            if not no_ack:
                self.unacked[tag] = (found, entry, None)
            count = len(messages)
        return received(entry, self, tag, entry.redelivered, None, count)

    def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        nowait: bool = False,
        callback: Callable[[Any], None] | None = None,
        arguments: Mapping[str, Any] | None = None,
        on_cancel: Callable[[str], None] | None = None,
    ) -> str:
        """Start a consumer; its callback runs in the connection's ``drain_events``."""
        with self._guard:
            found = self.queue_locked(queue)
            if (exclusive and found.consumers) or any(c.exclusive for c in found.consumers):
                raise AccessRefused(
                    f"ACCESS_REFUSED - queue '{found.name}' in vhost '{self.vhost.name}' "
                    "in exclusive use",
                    reply_code=403,
                )
            tag = consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
            if tag in self.consumers:
                raise IrrecoverableChannelError(
                    f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", reply_code=530
                )
            consumer = Consumer(tag, self, self, found, callback, no_ack, exclusive, on_cancel)
            self.consumers[tag] = consumer
            found.consumers.append(consumer)
            dispatch(found)
        return tag

    def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer; deliveries not yet dispatched go back to the queue."""
        with self._guard:
            consumer = self.consumers.get(consumer_tag)
            if consumer is not None:
                self.cancel_locked(consumer, notify=False)

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery, or every one up to ``delivery_tag``."""
        LOCK.acquire()
        try:
            if not self._open:
                raise self._closed_error()
            if not multiple:
                record = self.unacked.pop(delivery_tag, None)
                if record is not None:
                    consumer = record[2]
                    if consumer is not None:  # a pushed delivery: its credit comes back
                        consumer.unacked -= 1
                        self.pushed -= 1
                        if self.prefetch_count:
                            self.credit_returned_locked(consumer)
                    return
            try:
                self.settle_locked(delivery_tag, multiple, None)
            except ChannelError as exc:
                self._fail_locked(exc)
        finally:
            LOCK.release()

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery, returning it to its queue when ``requeue``."""
        with self._guard:
            self.settle_locked(delivery_tag, False, requeue)

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Reject one delivery, or every one up to ``delivery_tag``."""
        with self._guard:
            self.settle_locked(delivery_tag, multiple, requeue)

    def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacked pushed deliveries: per consumer, or per channel if ``a_global``."""
        with self._guard:
            if prefetch_size:
                raise not_implemented(f"prefetch_size!=0 ({prefetch_size})")
            self.prefetch_count = prefetch_count
            self.prefetch_global = a_global
            for consumer in list(self.consumers.values()):
                dispatch(consumer.queue)

    def basic_recover(self, requeue: bool = False) -> None:
        """Return every unacked message to its queue (always requeued here)."""
        with self._guard:
            touched = self.reclaim_locked(None) | self.requeue_all_locked()
            for queue in touched:
                dispatch(queue)

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<MemoryChannel id={self.channel_id} {state} vhost={self.vhost.name!r} "
            f"consumers={len(self.consumers)} unacked={len(self.unacked)}>"
        )
