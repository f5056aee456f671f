"""The asyncio AMQP channel: :class:`transports.base_aio.AsyncConfirmingChannel` on frames.

Requests and replies: a synchronous method (``queue.declare`` ...) writes
its frame and parks a future in the channel's reply line; replies arrive in
request order, so each one settles the oldest waiter. Several tasks may have
requests in flight on one channel at once. A waiter cancelled by its task
stays in line until its reply arrives, which is then consumed and dropped;
a ``basic.get`` whose caller went away gives its message back
(``basic.reject`` with requeue), so cancelling never loses a message.

Every wait is bounded: a reply that does not come within :data:`RPC_TIMEOUT`
seconds means the link is unusable, and the connection is dropped.

Deliveries, acks, nacks, returns and broker-side cancels are dispatched as
they are read, on the event loop, to the consumer's callback, the
:attr:`~AsyncAmqpChannel.confirm_listener` and :attr:`~AsyncAmqpChannel.on_return`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from amqp import spec
from amqp.exceptions import ChannelError as DriverChannelError
from amqp.exceptions import error_for_code
from amqp.serialization import dumps

from broker.errors import BrokerError, RecoverableConnectionError
from transports._shared.replies import channel_closed
from transports._shared.validation import check_properties, check_route
from transports.amqp.aio.consumers import Subscriptions
from transports.amqp.aio.frames import FrameEncoder, OutgoingMessage, arguments, method_name
from transports.amqp.aio.protocol import AmqpProtocol
from transports.amqp.aio.replies import Orphaned, Reply, ReplyLine
from transports.amqp.errors import translate
from transports.base import ConfirmListener, MessageCallback, QueueDeclareOk, ReturnCallback
from transports.base_aio import TimeSlice

__all__ = ["RPC_TIMEOUT", "AsyncAmqpChannel", "ChannelLink"]

logger = logging.getLogger(__name__)

#: Seconds a synchronous method may wait for its reply before the link is declared dead.
RPC_TIMEOUT = 30.0

_ARGS_CACHE_SIZE = 64
_OPEN_OK = frozenset({spec.Channel.OpenOk})
_CLOSE_OK = frozenset({spec.Channel.CloseOk})
_GET_REPLIES = frozenset({spec.Basic.GetOk, spec.Basic.GetEmpty})


class ChannelLink(Protocol):
    """What a channel needs of its connection (an ``AsyncAmqpConnection``)."""

    #: The broker URL with the password masked, for messages.
    display_url: str

    @property
    def encoder(self) -> FrameEncoder:
        """Writes frames to the connection."""
        ...

    @property
    def protocol(self) -> AmqpProtocol:
        """The connection's protocol (back-pressure, flushing)."""
        ...

    def forget_channel(self, channel_id: int) -> None:
        """The channel closed: its number may be used again."""
        ...

    def link_failed(self, err: BrokerError) -> None:
        """A request timed out: the link is unusable, drop it."""
        ...


class AsyncAmqpChannel:
    """One AMQP channel on an asyncio connection (see the module docstring).

    Attributes:
        channel_id: the channel number.
        owner: whoever opened it.
        on_return: ``on_return(reply_code, reply_text, exchange, routing_key,
            message)`` for returned ``mandatory`` messages; ``None`` logs and drops them.
        confirm_listener: told of acks and nacks after :meth:`confirm_select`.
    """

    def __init__(self, link: ChannelLink, channel_id: int, owner: object | None = None) -> None:
        self.channel_id = channel_id
        self.owner = owner
        self.on_return: ReturnCallback | None = None
        self.confirm_listener: ConfirmListener | None = None
        self._link = link
        self._encoder = link.encoder
        self._protocol = link.protocol
        self._replies = ReplyLine()
        self._consumers = Subscriptions()
        self._publish_args: dict[tuple[str, str, bool, bool], bytes] = {}
        self._open = False
        self._error: BrokerError | None = None
        # The broker's error that closed the channel while no call was waiting:
        # the next call raises it (as py-amqp would, reading it then).
        self._unreported: BrokerError | None = None
        self._slice = TimeSlice()

    # -- state ------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True from the broker's ``channel.open-ok`` until either side (or the link) closes it."""
        return self._open and not self._protocol.closed

    @property
    def confirms_synchronously(self) -> bool:
        """False: RabbitMQ's acks arrive later, as the connection is read."""
        return False

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<AsyncAmqpChannel id={self.channel_id} {state} waiting={len(self._replies)} "
            f"consumers={len(self._consumers)} on {self._link.display_url}>"
        )

    def _closed_error(self) -> BrokerError:
        unreported, self._unreported = self._unreported, None
        if unreported is not None:
            return unreported
        if self._protocol.closed:
            return RecoverableConnectionError(f"connection to {self._link.display_url} is closed")
        return channel_closed(self.channel_id, str(self._error) if self._error else None)

    # -- requests -------------------------------------------------------------------

    async def _rpc(
        self,
        method_sig: tuple[int, int],
        fmt: str,
        values: Any,
        replies: frozenset[tuple[int, int]],
        orphaned: Orphaned | None = None,
    ) -> Reply:
        if not self.is_open:
            raise self._closed_error()
        self._encoder.method(self.channel_id, method_sig, fmt, values)
        future = self._replies.expect(replies, orphaned)
        try:
            async with asyncio.timeout(RPC_TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            err = RecoverableConnectionError(
                f"no reply to {method_name(method_sig)} from {self._link.display_url} within "
                f"{RPC_TIMEOUT:g} s: the connection is unusable"
            )
            self._link.link_failed(err)
            raise err from None

    async def _call(
        self,
        method_sig: tuple[int, int],
        fmt: str,
        values: Any,
        reply: tuple[int, int] | None,
        nowait: bool = False,
    ) -> tuple[Any, ...] | None:
        if reply is None or nowait:
            if not self.is_open:
                raise self._closed_error()
            self._encoder.method(self.channel_id, method_sig, fmt, values)
            return None
        _, args, _ = await self._rpc(method_sig, fmt, values, frozenset({reply}))
        return args

    async def open(self) -> None:
        """Open the channel on the broker (called by the connection)."""
        self._open = True
        try:
            await self._rpc(spec.Channel.Open, "s", ("",), _OPEN_OK)
        except BaseException:
            self._open = False
            raise

    async def close(self) -> None:
        """Close the channel (waits for ``channel.close-ok``). Never raises broker errors."""
        if not self.is_open:
            return
        try:
            await self._rpc(spec.Channel.Close, "BsBB", (0, "", 0, 0), _CLOSE_OK)
        except BrokerError as exc:
            logger.debug("closing %r failed: %s", self, exc)
        finally:
            self._shut(None)

    def _shut(self, error: BrokerError | None) -> None:
        """Mark closed, fail every waiter with ``error`` (or a closed-channel error)."""
        was_open, self._open = self._open, False
        if error is not None and self._error is None:
            self._error = error
        told = self._replies.fail(lambda: self._closed_error() if error is None else error)
        if error is not None and not told:
            self._unreported = error
        self._consumers.clear()
        if was_open:
            self._link.forget_channel(self.channel_id)

    def link_lost(self, error: BrokerError) -> None:
        """The connection is gone: fail every waiter with ``error`` (called by the connection)."""
        self._shut(error)

    # -- incoming -------------------------------------------------------------------

    def dispatch(self, method_sig: tuple[int, int], buf: bytes, msg: Any) -> None:
        """Handle one incoming method of this channel (called by the connection)."""
        if method_sig == spec.Basic.Deliver:
            self._deliver(buf, msg)
        elif method_sig == spec.Basic.Ack:
            listener = self.confirm_listener
            if listener is not None:
                tag, multiple = arguments(method_sig, buf)[:2]
                listener.on_ack(tag, multiple)
        elif method_sig == spec.Basic.Nack:
            listener = self.confirm_listener
            if listener is not None:
                tag, multiple = arguments(method_sig, buf)[:2]
                listener.on_nack(tag, multiple)
        elif method_sig == spec.Basic.Return:
            self._returned(arguments(method_sig, buf), msg)
        elif method_sig == spec.Basic.Cancel:
            self._consumers.cancelled_by_broker(arguments(method_sig, buf)[0])
        elif method_sig == spec.Channel.Close:
            self._closed_by_broker(arguments(method_sig, buf))
        elif method_sig == spec.Channel.Flow:
            (active,) = arguments(method_sig, buf)
            self._encoder.method(self.channel_id, spec.Channel.FlowOk, "b", (active,))
        else:
            self._reply(method_sig, arguments(method_sig, buf), msg)

    def _reply(self, method_sig: tuple[int, int], args: tuple[Any, ...], msg: Any) -> None:
        if not self._replies.settle(method_sig, args, msg):
            logger.debug("%r: reply %s without a request", self, method_name(method_sig))

    def _deliver(self, buf: bytes, msg: Any) -> None:
        consumer_tag, delivery_tag, redelivered, exchange, routing_key = arguments(
            spec.Basic.Deliver, buf
        )
        msg.channel = self
        msg.delivery_info = {
            "consumer_tag": consumer_tag,
            "delivery_tag": delivery_tag,
            "redelivered": redelivered,
            "exchange": exchange,
            "routing_key": routing_key,
        }
        if not self._consumers.deliver(consumer_tag, msg) and self._open:
            # Sent before our basic.cancel reached the broker: give it back.
            self._encoder.method(self.channel_id, spec.Basic.Reject, "Lb", (delivery_tag, True))

    def _returned(self, args: tuple[Any, ...], msg: Any) -> None:
        code, text, exchange, routing_key = args
        msg.channel = self
        msg.delivery_info = {"exchange": exchange, "routing_key": routing_key}
        callback = self.on_return
        if callback is None:
            logger.warning(
                "message returned by %s (%s %s) from exchange %r with routing key %r "
                "dropped: set on_return to handle it",
                self._link.display_url, code, text, exchange, routing_key,
            )  # fmt: skip
            return
        callback(code, text, exchange, routing_key, msg)

    def _closed_by_broker(self, args: tuple[Any, ...]) -> None:
        code, text, class_id, method_id = args
        driver_error = error_for_code(code, text, (class_id, method_id), DriverChannelError)
        error = translate(driver_error, self._link.display_url)
        if self._open:
            self._encoder.method(self.channel_id, spec.Channel.CloseOk)
        self._shut(error)

    # -- exchanges and queues ---------------------------------------------------------

    async def confirm_select(self, nowait: bool = False) -> None:
        """Put the channel in publisher-confirm mode."""
        await self._call(spec.Confirm.Select, "b", (nowait,), spec.Confirm.SelectOk, nowait)

    async def exchange_declare(
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
        values = (0, exchange, type, passive, durable, auto_delete, False, nowait, arguments or {})
        await self._call(
            spec.Exchange.Declare, "BssbbbbbF", values, spec.Exchange.DeclareOk, nowait
        )

    async def exchange_delete(
        self, exchange: str, if_unused: bool = False, nowait: bool = False
    ) -> None:
        """Delete an exchange."""
        values = (0, exchange, if_unused, nowait)
        await self._call(spec.Exchange.Delete, "Bsbb", values, spec.Exchange.DeleteOk, nowait)

    async def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (RabbitMQ extension)."""
        values = (0, destination, source, routing_key, nowait, arguments or {})
        await self._call(spec.Exchange.Bind, "BsssbF", values, spec.Exchange.BindOk, nowait)

    async def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        values = (0, destination, source, routing_key, nowait, arguments or {})
        await self._call(spec.Exchange.Unbind, "BsssbF", values, spec.Exchange.UnbindOk, nowait)

    async def queue_declare(
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
        values = (0, queue, passive, durable, exclusive, auto_delete, nowait, arguments or {})
        ok = await self._call(spec.Queue.Declare, "BsbbbbbF", values, spec.Queue.DeclareOk, nowait)
        return None if ok is None else QueueDeclareOk(*ok)

    async def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        values = (0, queue, exchange, routing_key, nowait, arguments or {})
        await self._call(spec.Queue.Bind, "BsssbF", values, spec.Queue.BindOk, nowait)

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a queue binding (``queue.unbind`` always has a reply)."""
        values = (0, queue, exchange, routing_key, arguments or {})
        await self._call(spec.Queue.Unbind, "BsssF", values, spec.Queue.UnbindOk)

    async def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        """Remove every ready message; returns how many (``None`` with ``nowait``)."""
        ok = await self._call(
            spec.Queue.Purge, "Bsb", (0, queue, nowait), spec.Queue.PurgeOk, nowait
        )
        return None if ok is None else int(ok[0])

    async def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        """Delete a queue; returns how many messages it held (``None`` with ``nowait``)."""
        values = (0, queue, if_unused, if_empty, nowait)
        ok = await self._call(spec.Queue.Delete, "Bsbbb", values, spec.Queue.DeleteOk, nowait)
        return None if ok is None else int(ok[0])

    # -- publishing -------------------------------------------------------------------

    def prepare_message(self, body: bytes, **properties: Any) -> OutgoingMessage:
        """Build a message for :meth:`basic_publish`; ``properties`` are AMQP basic properties.

        ``None`` values are dropped and a text body is encoded (naming its
        encoding), as py-amqp does.
        """
        if None in properties.values():
            properties = {k: v for k, v in properties.items() if v is not None}
        check_properties(properties)  # before anything is written: the channel stays usable
        if isinstance(body, str):
            body = body.encode(properties.setdefault("content_encoding", "utf-8"))
        return OutgoingMessage(body, properties)

    async def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Hand ``msg`` to the connection in one write; waits only under back-pressure.

        The wait comes before the write: a publish cancelled while waiting
        sent nothing, and one that returned was written whole. A task that
        keeps publishing also yields there every
        :data:`~transports.base_aio.SLICE` seconds.
        """
        protocol = self._protocol
        if protocol.must_yield or self._slice.due():
            await protocol.writable()
        if not self._open or protocol.closed:
            raise self._closed_error()
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
        self._encoder.publish(self.channel_id, args, msg)

    # -- consuming --------------------------------------------------------------------

    async def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacknowledged deliveries (``prefetch_count``)."""
        values = (prefetch_size, prefetch_count, a_global)
        await self._call(spec.Basic.Qos, "lBb", values, spec.Basic.QosOk)

    async def basic_consume(
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
        """Start a consumer; ``callback(message)`` runs on the loop for each delivery."""
        values = (0, queue, consumer_tag, no_local, no_ack, exclusive, nowait, arguments or {})
        if consumer_tag:
            # Registered first: deliveries may follow consume-ok in the same read.
            self._consumers.add(consumer_tag, callback, on_cancel, no_ack)
        try:
            ok = await self._call(
                spec.Basic.Consume, "BssbbbbF", values, spec.Basic.ConsumeOk, nowait
            )
        except BaseException:
            if consumer_tag:
                self._consumers.remove(consumer_tag)
            raise
        tag: str = consumer_tag if ok is None else ok[0]
        self._consumers.add(tag, callback, on_cancel, no_ack)
        return tag

    async def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer; deliveries still in flight to it are given back."""
        self._consumers.stop(consumer_tag)  # later deliveries are given back
        try:
            await self._call(spec.Basic.Cancel, "sb", (consumer_tag, nowait), spec.Basic.CancelOk,
                             nowait)  # fmt: skip
        finally:
            self._consumers.remove(consumer_tag)

    async def basic_get(self, queue: str = "", no_ack: bool = False) -> Any:
        """Fetch one message, or ``None`` when the queue is empty."""

        def orphaned(sig: tuple[int, int], args: tuple[Any, ...], msg: Any) -> None:
            # The caller was cancelled: the message goes back rather than sit unacked.
            if sig == spec.Basic.GetOk and not no_ack and self._open:
                self._encoder.method(self.channel_id, spec.Basic.Reject, "Lb", (args[0], True))

        sig, args, msg = await self._rpc(
            spec.Basic.Get, "Bsb", (0, queue, no_ack), _GET_REPLIES, orphaned
        )
        if sig == spec.Basic.GetEmpty:
            return None
        delivery_tag, redelivered, exchange, routing_key, message_count = args
        msg.channel = self
        msg.delivery_info = {
            "delivery_tag": delivery_tag,
            "redelivered": redelivered,
            "exchange": exchange,
            "routing_key": routing_key,
            "message_count": message_count,
        }
        return msg

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery (or all up to it with ``multiple``); yields as a publish."""
        if self._slice.due():
            await self._protocol.writable()
        if not self.is_open:
            raise self._closed_error()
        self._encoder.method(self.channel_id, spec.Basic.Ack, "Lb", (delivery_tag, multiple))

    async def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery, requeueing it or not."""
        await self._call(spec.Basic.Reject, "Lb", (delivery_tag, requeue), None)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject one delivery (or all up to it), requeueing by default."""
        await self._call(spec.Basic.Nack, "Lbb", (delivery_tag, multiple, requeue), None)

    async def basic_recover(self, requeue: bool = False) -> None:
        """Redeliver this channel's unacknowledged messages."""
        await self._call(spec.Basic.Recover, "b", (requeue,), spec.Basic.RecoverOk)
