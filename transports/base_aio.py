"""The contract every asyncio transport implements, beside the synchronous one.

It mirrors :mod:`transports.base` half for half:

* :class:`AsyncTransport` -- one instance per :class:`broker.aio.Connection`;
  opens connections with the coroutine :meth:`AsyncTransport.connect`.
  Constructing it does no I/O. The facts a transport declares (default
  ports, error classes, capabilities) stay on the synchronous class the URL
  scheme resolves to, so both APIs parse URLs and fill defaults alike; the
  registry (:func:`transports.resolve_async`) maps the same names to these
  classes.
* :class:`AsyncTransportConnection` -- one live connection to one broker.

Channels (:class:`AsyncChannel`) speak the same AMQP 0-9-1 method names with
py-amqp's keyword arguments as :class:`transports.base.Channel`; every method
that talks to the broker is a coroutine, :meth:`AsyncChannel.prepare_message`
(pure) is not. A channel may declare the capability
:class:`AsyncPublisherConfirms`; :class:`AsyncConfirmingChannel` is a channel
with it, as every built-in asyncio transport's channels are. Confirms and
returns reach the same :class:`~transports.base.ConfirmListener` and
:data:`~transports.base.ReturnCallback` as on the synchronous side.

Concurrency: asyncio is single-threaded, so several tasks may use one
connection and its channels at once. A transport writes the frames of one
publish in one piece (no other task's frames between them) and matches each
reply to the channel that asked; a channel serialises its own synchronous
methods (one ``*-ok`` awaited at a time, in order).

Cancellation: cancelling a task inside any of these coroutines leaves the
connection consistent: a request whose frame was written still gets its
reply consumed by the channel, a frame is never half-written, and a
cancelled ``drain_events`` dispatches nothing later on the cancelled task's
behalf.

Error contract: as :mod:`transports.base` -- only :mod:`broker.errors`
classes, plus :class:`TimeoutError` from
:meth:`AsyncTransportConnection.drain_events`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from transports.base import (
    Capabilities,
    ConfirmListener,
    ConnectionParams,
    MessageCallback,
    QueueDeclareOk,
    RawMessage,
    ReturnCallback,
)

__all__ = [
    "SLICE",
    "AsyncChannel",
    "AsyncConfirmingChannel",
    "AsyncPublisherConfirms",
    "AsyncTransport",
    "AsyncTransportConnection",
    "LostCallback",
    "TimeSlice",
]

#: ``on_lost(exc)``: the link broke without anyone closing it (``exc`` says why).
LostCallback = Callable[[BaseException], None]

#: Seconds a task may keep the loop in calls that need not wait (publishes, acks)
#: before one of them yields: far below asyncio debug mode's 100 ms slow-callback
#: warning, and costing one extra turn of the loop every few milliseconds.
SLICE = 0.005


class TimeSlice:
    """Says when a task running calls that never wait should yield to the loop.

    Calls that complete without waiting (a publish into the write buffer, an
    ack, a delivery already received) never suspend the task, so a loop of
    them would starve the event loop; the asyncio transports and consumers ask
    :meth:`due` before such a call and ``await asyncio.sleep(0)`` when it says
    so (before doing anything, so a cancellation there cancels nothing done).
    """

    __slots__ = ("_clock", "_next", "seconds")

    def __init__(self, seconds: float = SLICE, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._next = clock() + seconds

    def due(self) -> bool:
        """True (and a new slice begins) when the current slice has run out."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True


@runtime_checkable
class AsyncChannel(Protocol):
    """An AMQP 0-9-1 channel for asyncio; names and keywords follow py-amqp.

    Consumer callbacks (``basic_consume(callback=...)``) are plain functions,
    called on the event loop as each delivery is read; whoever needs to await
    per message queues the delivery and awaits in a task of its own.
    """

    channel_id: int
    #: Whoever opened the channel (the :class:`broker.aio.Connection`); stored, never used.
    owner: object | None
    #: See :attr:`transports.base.Channel.on_return`.
    on_return: ReturnCallback | None

    @property
    def is_open(self) -> bool: ...

    async def close(self) -> None: ...

    async def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def exchange_delete(
        self, exchange: str, if_unused: bool = False, nowait: bool = False
    ) -> None: ...

    async def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> QueueDeclareOk | None: ...

    async def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None: ...

    async def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None: ...

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        """Build the transport's message object for :meth:`basic_publish` (no I/O)."""
        ...

    async def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Send one message; returns once its frames are handed to the connection.

        Waits only while the connection applies back-pressure (its write
        buffer is full); never for a confirm.
        """
        ...

    async def basic_get(self, queue: str = "", no_ack: bool = False) -> RawMessage | None: ...

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
    ) -> str: ...

    async def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None: ...

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None: ...

    async def basic_reject(self, delivery_tag: int, requeue: bool) -> None: ...

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None: ...

    async def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None: ...

    async def basic_recover(self, requeue: bool = False) -> None: ...


class AsyncPublisherConfirms(Protocol):
    """Capability: publisher confirms, as :class:`transports.base.PublisherConfirms`."""

    #: Told of this channel's acks and nacks, on the event loop, as they are read.
    confirm_listener: ConfirmListener | None

    @property
    def confirms_synchronously(self) -> bool:
        """True when :meth:`AsyncChannel.basic_publish` returns only once the broker has it."""
        ...

    async def confirm_select(self, nowait: bool = False) -> None:
        """Put the channel in confirm mode; publishes are numbered from 1."""
        ...


@runtime_checkable
class AsyncConfirmingChannel(AsyncChannel, AsyncPublisherConfirms, Protocol):
    """A channel with publisher confirms (every built-in asyncio transport's channels are).

    No write-buffering capability is needed: asyncio transports coalesce the
    frames written during one turn of the event loop by themselves.
    """


class AsyncTransportConnection(abc.ABC):
    """One live connection to one broker, opened by :meth:`AsyncTransport.connect`.

    All methods run on the event loop that opened it. Heartbeats need no
    caller: the transport sends them and watches the peer on its own timers,
    and a peer silent for about two intervals breaks the link
    (:class:`~broker.errors.HeartbeatTimeout`).
    """

    params: ConnectionParams

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """True until the connection is closed or found broken."""

    @property
    @abc.abstractmethod
    def heartbeat(self) -> float:
        """The negotiated heartbeat interval in seconds; 0 when off."""

    @property
    @abc.abstractmethod
    def server_properties(self) -> Mapping[str, Any]:
        """What the broker announced: product, version, capabilities."""

    @property
    @abc.abstractmethod
    def is_blocked(self) -> bool:
        """True while the broker has blocked this connection (``connection.blocked``)."""

    @property
    def failure(self) -> BaseException | None:
        """The connection-level error that broke this connection, if one did."""
        return None

    @abc.abstractmethod
    async def channel(self, owner: object | None = None) -> AsyncConfirmingChannel:
        """Open a new channel; ``owner`` is stored as its :attr:`AsyncChannel.owner`."""

    @abc.abstractmethod
    async def drain_events(self, timeout: float | None = None) -> None:
        """Wait until at least one event (a delivery, a confirm, a reply) was dispatched.

        Deliveries and confirms are dispatched as they are read, whether or
        not anyone waits here; this only waits for the next one.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            broker.errors.RecoverableConnectionError: the link is (or went) down.
        """

    @abc.abstractmethod
    def verify(self) -> bool:
        """Cheap liveness check without I/O: False when the link is known dead."""

    @abc.abstractmethod
    async def close(self, timeout: float = 2.0) -> None:
        """Close gracefully, waiting at most ``timeout`` seconds, then tear down. Never raises."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Drop the connection at once without any handshake."""


class AsyncTransport(abc.ABC):
    """An asyncio transport class: a factory for its connections.

    Registered under the same names as the synchronous transport it sits
    beside (:func:`transports.register_async`).
    """

    #: The registry name (``'amqp'``, ``'memory'``, ...).
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @abc.abstractmethod
    async def connect(
        self,
        params: ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: LostCallback | None = None,
    ) -> AsyncTransportConnection:
        """Open a connection to the broker described by ``params``.

        ``on_lost(exc)`` is called (on the loop) when the link breaks later
        without :meth:`AsyncTransportConnection.close` having been called.

        Raises:
            broker.errors.AuthenticationError: the broker refused the login.
            broker.errors.RecoverableConnectionError: refused, reset, timed out.
            broker.errors.IrrecoverableConnectionError: other fatal failures.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.name!r}>"
