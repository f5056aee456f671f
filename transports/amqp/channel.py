"""The AMQP transport's channel: py-amqp's channel behind the brokerpool contract.

Every method delegates to the py-amqp channel and translates driver errors
(:mod:`transports.amqp.errors`). After a channel error the broker has closed
the channel: :attr:`AmqpChannel.is_open` turns false and later calls raise
:class:`~broker.errors.RecoverableChannelError`; open a new channel.

Publisher confirms (:class:`transports.base.PublisherConfirms`): call
:meth:`AmqpChannel.confirm_select`, then set
:attr:`AmqpChannel.confirm_listener` to a
:class:`~transports.base.ConfirmListener`. The broker numbers publishes on a
confirm-mode channel 1, 2, 3, ... in publish order; ``multiple=True`` covers
every tag up to ``delivery_tag``. The listener's ``on_ack``/``on_nack`` run on
the thread using the channel: while it waits for them
(:meth:`AmqpChannel.wait_confirms`), in its next call on the channel, or in
its ``drain_events``. :attr:`AmqpChannel.events` is py-amqp's listener table
(``'basic_ack'``, ``'basic_nack'``, ``'basic_return'`` → set of callables) for
code that needs several listeners.

Publishing checks what is sent against the limits every transport enforces
(:mod:`transports._shared.validation`) before anything is written, so a bad
header or routing key costs neither the channel nor the connection. It sends
what py-amqp's ``basic_publish`` sends, more cheaply: like
py-amqp, it first dispatches whatever has arrived (so a ``connection.blocked``,
a returned message or the error an earlier publish caused is seen now), but
finds out that nothing has with one ``poll`` (py-amqp: a non-blocking read and
two ``settimeout`` calls); and the encoded method arguments are reused.

Pipelined publishing (:meth:`AmqpChannel.buffered_writes`, the
:class:`transports.base.BufferedWrites` capability): inside the
block, the connection's outgoing frames are sent in chunks of about 64 KB
rather than one system call per frame (and after about 50 ms at the latest,
see :mod:`transports.amqp.writes`), and publishes on this channel do not
look for incoming frames first (whoever pipelines reads the connection when
it waits for confirms, and every read sends what is held first). Any other
operation sends what is held at once.

Delivered messages are py-amqp ``Message`` objects (bodies as ``bytes``).
Acknowledge them through this channel (:meth:`AmqpChannel.basic_ack`), not
with ``message.ack()``, which talks to py-amqp directly and bypasses the
error translation.

Threads: the connection may be shared, a channel may not. One thread at a
time calls a channel (a second one gets :class:`~broker.errors.ChannelInUse`,
see :mod:`transports.amqp.usage`); :meth:`AmqpChannel.basic_ack`,
:meth:`~AmqpChannel.basic_reject` and :meth:`~AmqpChannel.basic_nack` may be
called from any thread at any time. The channel's events (deliveries,
confirms, returns, its replies) are dispatched on the thread that uses it
(see :mod:`transports.amqp.demux`).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from time import monotonic
from types import TracebackType
from typing import Any, Protocol, Self

import amqp
from amqp import spec
from amqp.serialization import dumps

from broker.errors import BrokerConnectionError, BrokerError, RecoverableChannelError
from transports._shared.properties import coerce_body, posix_seconds
from transports._shared.validation import check_properties, check_route
from transports.amqp.driver import Driver
from transports.amqp.errors import DRIVER_ERRORS, ErrorTranslator
from transports.amqp.pyamqp_internals import outgoing_message
from transports.amqp.usage import ChannelUse
from transports.amqp.writes import DEFAULT_LIMIT, HeldWrites
from transports.base import (
    ConfirmListener,
    MessageCallback,
    QueueDeclareOk,
    RawMessage,
    ReturnCallback,
)

__all__ = ["AmqpChannel", "ChannelHost"]

logger = logging.getLogger(__name__)

_BASIC_PUBLISH = spec.Basic.Publish
#: Encoded basic.publish arguments kept per channel (one per exchange and key, mostly).
_ARGS_CACHE_SIZE = 64


class ChannelHost(Protocol):
    """What a channel needs of the connection it was opened on (an ``AmqpConnection``)."""

    #: The broker URL with the password masked, for messages.
    display_url: str

    @property
    def driver(self) -> Driver:
        """The py-amqp connection underneath."""
        ...

    @property
    def heartbeat(self) -> float:
        """The negotiated heartbeat interval (0: off)."""
        ...

    def is_lost(self) -> bool:
        """True when the socket is gone or known broken."""
        ...

    def connection_failed(self, err: BrokerError) -> None:
        """A connection-level error was raised on a channel: drop the link."""
        ...


class AmqpChannel:
    """One AMQP channel.

    Implements :class:`transports.base.Channel` and both capabilities of
    :class:`transports.base.ConfirmingChannel`.

    Attributes:
        channel_id: the channel number on its connection.
        on_return: called for each message the broker returns (``mandatory``
            publish that matched no queue) as ``on_return(reply_code,
            reply_text, exchange, routing_key, message)``. When ``None``,
            returned messages are logged at WARNING and dropped.
    """

    __slots__ = (
        "_chan",
        "_confirm_listener",
        "_conn",
        "_driver",
        "_errors",
        "_holds",
        "_publish",
        "_publish_args",
        "_use",
        "channel_id",
        "on_return",
        "owner",
    )

    def __init__(self, connection: ChannelHost, chan: Any, owner: object | None = None) -> None:
        self._conn = connection
        self._chan = chan
        self.channel_id: int = chan.channel_id
        self.owner = owner
        self.on_return: ReturnCallback | None = None
        self._confirm_listener: ConfirmListener | None = None
        # Bound once: basic_publish is the hot path.
        self._publish = self._publish_polled
        self._driver = connection.driver
        self._holds = 0  # active buffered_writes() blocks on this channel
        self._publish_args: dict[tuple[str, str, bool, bool], bytes] = {}
        self._errors = ErrorTranslator(
            connection.display_url, is_lost=connection.is_lost, after=self._after_error
        )
        self._errors.heartbeat = connection.heartbeat
        self._use = ChannelUse(self.__repr__, self._used_by)
        chan.events["basic_return"].add(self._dispatch_return)

    def _used_by(self, thread: int) -> None:
        demux = self._driver.demux
        if demux is not None:
            demux.used_by(self.channel_id, thread)

    # -- state ------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until this channel or its connection is closed."""
        return bool(self._chan.is_open) and self._chan.connection is not None

    @property
    def events(self) -> Any:
        """py-amqp's listener table (``defaultdict(set)``) for acks, nacks and returns."""
        return self._chan.events

    @property
    def confirms_synchronously(self) -> bool:
        """False: RabbitMQ's acks arrive later, while the connection is read."""
        return False

    @property
    def confirm_listener(self) -> ConfirmListener | None:
        """Who is told of this channel's acks and nacks (after :meth:`confirm_select`)."""
        return self._confirm_listener

    @confirm_listener.setter
    def confirm_listener(self, listener: ConfirmListener | None) -> None:
        # Its methods go straight into py-amqp's table: no extra call per confirm.
        events = self._chan.events
        old = self._confirm_listener
        if old is not None:
            events["basic_ack"].discard(old.on_ack)
            events["basic_nack"].discard(old.on_nack)
        if listener is not None:
            events["basic_ack"].add(listener.on_ack)
            events["basic_nack"].add(listener.on_nack)
        self._confirm_listener = listener

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<AmqpChannel id={self.channel_id} {state} on {self._conn.display_url}>"

    # -- lifecycle ---------------------------------------------------------------

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
        """Close the channel (waits for the broker's close-ok). Never raises.

        Closing a channel of a dead connection just forgets it; the connection
        reports its own failure on its next use.
        """
        if not self.is_open:
            return
        took = self._use.enter()
        try:
            with self._errors:
                self._chan.close()
        except BrokerError as exc:
            logger.debug("closing %r failed: %s", self, exc)
        finally:
            if took:
                self._use.leave()

    def _after_error(self, err: BrokerError) -> None:
        if isinstance(err, BrokerConnectionError):
            self._conn.connection_failed(err)

    def _fail(self, exc: BaseException) -> BrokerError:
        """Translate an error of this channel's driver call."""
        chan = self._chan
        if (
            isinstance(exc, amqp.RecoverableConnectionError)
            and not exc.reply_code
            and chan.connection is None
            and not self._conn.is_lost()
        ):
            # py-amqp reports a call on a closed channel as a closed connection.
            return RecoverableChannelError(
                f"channel {self.channel_id} on {self._conn.display_url} is closed; "
                f"open a new channel"
            )
        return self._errors.error_for(exc)

    def _dispatch_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        callback = self.on_return
        code, text = exc.reply_code, exc.reply_text
        if callback is None:
            logger.warning(
                "message returned by %s (%s %s) from exchange %r with routing key %r "
                "dropped: set on_return to handle it",
                self._conn.display_url,
                code,
                text,
                exchange,
                routing_key,
            )
            return
        callback(code, text, exchange, routing_key, message)

    # -- publishing (hot path: no context manager, no kwargs) -------------------

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        """Build a py-amqp message; ``properties`` are AMQP basic properties.

        A :class:`~datetime.datetime` ``timestamp`` is sent as what AMQP
        carries, whole seconds since the epoch (and delivered so).

        Raises:
            broker.errors.ConfigurationError: a property or header AMQP cannot
                carry or RabbitMQ would refuse (see
                :mod:`transports._shared.validation`); nothing was sent.
        """
        check_properties(properties)
        if body.__class__ is not bytes:
            body = coerce_body(body, properties)
        if "timestamp" in properties and isinstance(properties["timestamp"], datetime.datetime):
            properties["timestamp"] = posix_seconds(properties["timestamp"])
        return outgoing_message(body, properties)

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Publish ``msg`` (from :meth:`prepare_message`); does not wait for a confirm.

        Raises:
            broker.errors.ConfigurationError: ``exchange`` or ``routing_key`` is
                not a str of at most 255 bytes; nothing was sent.
        """
        took = self._use.enter()
        try:
            self._publish(msg, exchange, routing_key, mandatory, immediate)
            if self._driver.write_buffer is not None and not self._holds:
                self._send_held()  # another channel is buffering: this one is not
        except DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        finally:
            if took:
                self._use.leave()

    def wait_confirms(self, timeout: float) -> None:
        """Dispatch this channel's next events on the calling thread, waiting up to ``timeout`` s.

        What a thread waiting for its confirms calls: the acks, nacks and
        returns of this channel (and a channel error) are dispatched here;
        other channels' events go to the threads that use them.

        Raises:
            TimeoutError: nothing arrived for this channel in time.
        """
        took = self._use.enter()
        try:
            self._driver.wait_channel(self.channel_id, monotonic() + max(timeout, 0.0))
        except TimeoutError:
            raise TimeoutError(f"no event on {self!r} within {timeout:g} s") from None
        except DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        finally:
            if took:
                self._use.leave()

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery (or all up to it with ``multiple``); from any thread."""
        try:
            self._chan.basic_ack(delivery_tag, multiple)
            if self._driver.write_buffer is not None:
                self._send_held()
        except DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc

    # -- pipelined publishing ------------------------------------------------------

    def buffered_writes(self, limit: int = DEFAULT_LIMIT) -> HeldWrites:
        """Send this connection's frames in chunks of about ``limit`` bytes meanwhile.

        ``with channel.buffered_writes(): ...`` -- for pipelined publishing,
        see the module docstring. Everything held is sent when the block
        ends, also when it raises. Blocks may nest and may be open on several
        channels of a connection at once.

        Raises:
            broker.errors.BrokerConnectionError: sending failed (on entry: the
                connection is gone); the connection is dropped.
        """
        return HeldWrites(self.channel_id, self._hold_writes, self._release_writes, limit)

    def _hold_writes(self, limit: int) -> None:
        try:
            self._driver.hold_writes(limit)
        except DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        self._holds += 1
        self._publish = self._publish_now

    def _release_writes(self, quiet: bool) -> None:
        self._holds -= 1
        if not self._holds:
            self._publish = self._publish_polled
        try:
            self._driver.release_writes()
        except DRIVER_ERRORS as exc:
            err = self._fail(exc)  # drops the connection
            if not quiet:
                raise err from exc

    def _send_held(self) -> None:
        buffer = self._driver.write_buffer
        if buffer is not None:
            buffer.flush()

    def _publish_polled(
        self, msg: Any, exchange: str, routing_key: str, mandatory: bool, immediate: bool
    ) -> None:
        # py-amqp's basic_publish: first dispatch what has arrived (a
        # connection.blocked, a return, an error caused by an earlier publish),
        # then send; see Driver.poll_events and _publish_now for what is cheaper.
        if self._chan.connection is None:
            raise amqp.RecoverableConnectionError("basic_publish: connection closed")
        self._driver.poll_channel(self.channel_id)
        self._publish_now(msg, exchange, routing_key, mandatory, immediate)

    def _publish_now(
        self, msg: Any, exchange: str, routing_key: str, mandatory: bool, immediate: bool
    ) -> None:
        # What py-amqp's basic_publish sends, without its per-call context
        # manager and promise, and with the encoded arguments kept for reuse.
        conn = self._chan.connection
        if conn is None:
            raise amqp.RecoverableConnectionError("basic_publish: connection closed")
        key = (exchange, routing_key, mandatory, immediate)
        try:
            args = self._publish_args.get(key)
        except TypeError:  # an unhashable exchange or routing key: check_route says which
            args = None
        if args is None:
            # Checked once per cached pair: the hot path pays nothing for it.
            check_route(exchange, routing_key)
            if len(self._publish_args) >= _ARGS_CACHE_SIZE:
                self._publish_args.clear()
            args = self._publish_args[key] = dumps(
                "Bssbb", (0, exchange, routing_key, mandatory, immediate)
            )
        try:
            conn.frame_writer(1, self.channel_id, _BASIC_PUBLISH, args, msg)
        except TimeoutError:
            # A write timeout leaves the stream cut mid-frame: as py-amqp, a
            # connection error (channel errors would not make callers reconnect).
            raise amqp.RecoverableConnectionError("basic_publish: timed out") from None

    # -- everything else ---------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        # ``method`` is a bound method of the py-amqp channel.
        took = self._use.enter()
        try:
            return self._settle(method, *args)
        finally:
            if took:
                self._use.leave()

    def _settle(self, method: Callable[..., Any], *args: Any) -> Any:
        # A call that only writes: allowed from any thread, nothing to enter.
        try:
            result = method(*args)
            if self._driver.write_buffer is not None:
                self._send_held()  # a nowait method must not sit behind a batch
            return result
        except DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc

    def confirm_select(self, nowait: bool = False) -> None:
        """Put the channel in publisher-confirm mode (see the module docstring)."""
        self._call(self._chan.confirm_select, nowait)

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
        """Declare an exchange (or check it exists with ``passive``)."""
        self._call(
            self._chan.exchange_declare,
            exchange,
            type,
            passive,
            durable,
            auto_delete,
            nowait,
            arguments,
        )

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        """Delete an exchange."""
        self._call(self._chan.exchange_delete, exchange, if_unused, nowait)

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (RabbitMQ extension)."""
        self._call(self._chan.exchange_bind, destination, source, routing_key, nowait, arguments)

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        self._call(self._chan.exchange_unbind, destination, source, routing_key, nowait, arguments)

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> QueueDeclareOk | None:
        """Declare a queue; returns its name and counts (``None`` with ``nowait``)."""
        ok = self._call(
            self._chan.queue_declare,
            queue,
            passive,
            durable,
            exclusive,
            auto_delete,
            nowait,
            arguments,
        )
        return None if ok is None else QueueDeclareOk(*ok)

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        self._call(self._chan.queue_bind, queue, exchange, routing_key, nowait, arguments)

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a queue binding."""
        self._call(self._chan.queue_unbind, queue, exchange, routing_key, nowait, arguments)

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        """Remove every ready message; returns how many (``None`` with ``nowait``)."""
        result: int | None = self._call(self._chan.queue_purge, queue, nowait)
        return result

    def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        """Delete a queue; returns how many messages it held (``None`` with ``nowait``)."""
        result: int | None = self._call(self._chan.queue_delete, queue, if_unused, if_empty, nowait)
        return result

    def basic_get(self, queue: str = "", no_ack: bool = False) -> RawMessage | None:
        """Fetch one message, or ``None`` when the queue is empty."""
        message: RawMessage | None = self._call(self._chan.basic_get, queue, no_ack)
        return message

    def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        nowait: bool = False,
        callback: MessageCallback | None = None,
        arguments: Mapping[str, Any] | None = None,
        on_cancel: Callable[[str], None] | None = None,
    ) -> str:
        """Start a consumer; ``callback(message)`` gets py-amqp messages as they are."""
        tag: str = self._call(
            self._chan.basic_consume,
            queue,
            consumer_tag,
            no_local,
            no_ack,
            exclusive,
            nowait,
            callback,
            arguments,
            on_cancel,
        )
        return tag

    def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer."""
        self._call(self._chan.basic_cancel, consumer_tag, nowait)

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery, requeueing it or not; from any thread."""
        self._settle(self._chan.basic_reject, delivery_tag, requeue)

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Reject one delivery (or all up to it), requeueing by default; from any thread."""
        self._settle(self._chan.basic_nack, delivery_tag, multiple, requeue)

    def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacknowledged deliveries (``prefetch_count``)."""
        self._call(self._chan.basic_qos, prefetch_size, prefetch_count, a_global)

    def basic_recover(self, requeue: bool = False) -> None:
        """Redeliver this channel's unacknowledged messages."""
        self._call(self._chan.basic_recover, requeue)
