"""The contract every transport implements.

A transport has two halves:

* :class:`Transport` -- one instance per :class:`broker.Connection`. It holds
  class-level facts (default port, capabilities, the error classes it raises)
  and opens connections with :meth:`Transport.connect`. Constructing it does
  no I/O.
* :class:`TransportConnection` -- one live connection to one broker. It
  creates channels, reads events, ticks heartbeats and closes.

Channels speak AMQP 0-9-1 method names with py-amqp's keyword arguments on
every transport (see :class:`Channel`), so code written against a channel runs
on ``memory://`` and ``amqp://`` alike. Beyond that contract a channel may
declare capabilities: :class:`PublisherConfirms` (confirm mode, with a
:class:`ConfirmListener`) and :class:`BufferedWrites` (holding frames for
pipelined publishing); :class:`ConfirmingChannel` is a channel with both, as
every built-in transport's channels are.

Error contract: a transport raises only classes from :mod:`broker.errors`
(plus :class:`TimeoutError` from :meth:`TransportConnection.drain_events`,
which is :class:`socket.timeout`, as kombu users expect). Driver exceptions are
translated at the transport boundary with ``raise Ours(...) from theirs``.
"""

from __future__ import annotations

import abc
import ssl as _ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

from broker.errors import (
    BrokerConnectionError,
    ChannelError,
    IrrecoverableChannelError,
    IrrecoverableConnectionError,
    RecoverableChannelError,
    RecoverableConnectionError,
)

__all__ = [
    "BufferedWrites",
    "Capabilities",
    "Channel",
    "ConfirmListener",
    "ConfirmingChannel",
    "ConnectionParams",
    "MessageCallback",
    "PublisherConfirms",
    "QueueDeclareOk",
    "RawMessage",
    "ReturnCallback",
    "SSLOption",
    "Transport",
    "TransportConnection",
    "WriteHold",
]

#: What ``ssl=`` accepts: off, on with defaults, a dict of options, or a context.
SSLOption = bool | Mapping[str, Any] | _ssl.SSLContext

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Everything a transport needs to open one connection to one broker.

    Built by :class:`broker.Connection` from the URL and its keyword
    arguments, with the transport's defaults already applied. The password is
    kept out of ``repr``.
    """

    hostname: str
    port: int
    userid: str | None = None
    password: str | None = field(default=None, repr=False)
    virtual_host: str = "/"
    ssl: SSLOption = False
    connect_timeout: float | None = 5.0
    heartbeat: float = 0.0
    login_method: str | None = None
    connection_name: str | None = None
    client_properties: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    transport_options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport can do."""

    heartbeats: bool
    publisher_confirms: bool
    exchange_types: frozenset[str]
    ssl: bool = False


class QueueDeclareOk(NamedTuple):
    """The reply to ``queue_declare`` (same shape as py-amqp's)."""

    queue: str
    message_count: int
    consumer_count: int


@runtime_checkable
class RawMessage(Protocol):
    """A message as a transport delivers it (py-amqp's ``Message`` satisfies this).

    ``properties`` holds AMQP basic properties by their py-amqp names
    (``content_type``, ``content_encoding``, ``application_headers``,
    ``delivery_mode``, ``priority``, ``correlation_id``, ``reply_to``,
    ``expiration``, ``message_id``, ``timestamp``, ``type``, ``user_id``,
    ``app_id``). ``delivery_info`` has ``exchange``, ``routing_key``,
    ``redelivered`` and, for pushed messages, ``consumer_tag``.
    """

    body: Any
    properties: dict[str, Any]
    delivery_info: dict[str, Any]

    @property
    def delivery_tag(self) -> int: ...


#: A consumer callback receives each delivered message.
MessageCallback = Callable[[Any], None]

#: ``on_return(reply_code, reply_text, exchange, routing_key, message)``: a
#: ``mandatory`` message that no queue took, handed back by the broker.
ReturnCallback = Callable[[int, str, str, str, Any], None]


@runtime_checkable
class Channel(Protocol):
    """An AMQP 0-9-1 channel; method names and keywords follow py-amqp.

    Every transport's channel implements this. Broker-side failures raise
    :class:`broker.errors.ChannelError` subclasses (the channel is then
    closed) or :class:`broker.errors.BrokerConnectionError` subclasses.
    """

    channel_id: int
    #: Whoever opened the channel, as passed to
    #: :meth:`TransportConnection.channel` (the :class:`broker.Connection`
    #: façade; ``None`` for a channel opened on a bare transport connection).
    #: Transports store it and never use it.
    owner: object | None
    #: Called for each ``mandatory`` message no queue took (see
    #: :data:`ReturnCallback`); ``None`` drops returned messages. RabbitMQ
    #: sends returns asynchronously, so on ``amqp://`` the call happens while
    #: the connection is read; ``memory://`` and ``redis://`` call it before
    #: :meth:`basic_publish` returns.
    on_return: ReturnCallback | None

    @property
    def is_open(self) -> bool: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def close(self) -> None: ...

    def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    def exchange_delete(
        self, exchange: str, if_unused: bool = False, nowait: bool = False
    ) -> None: ...

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (a RabbitMQ extension).

        Messages published to ``source`` that match the binding (by the
        source's type) are routed on through ``destination``, once per queue
        however many paths lead there. A missing exchange raises
        :class:`~broker.errors.NotFound`.
        """
        ...

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        ...

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> QueueDeclareOk | None: ...

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None: ...

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None: ...

    def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None: ...

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        """Build the transport's message object for :meth:`basic_publish`.

        Raises:
            broker.errors.ConfigurationError: a property or header outside the
                limits every transport enforces (:mod:`transports._shared.validation`).
        """
        ...

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Publish a message made by :meth:`prepare_message`.

        Raises:
            broker.errors.ConfigurationError: ``exchange`` or ``routing_key`` is
                not a str of at most 255 bytes. Raised before anything is sent,
                so the channel (and a confirm-mode channel's count) is intact.
        """
        ...

    def basic_get(self, queue: str = "", no_ack: bool = False) -> RawMessage | None: ...

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
    ) -> str: ...

    def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None: ...

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None: ...

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None: ...

    def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None: ...

    def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None: ...

    def basic_recover(self, requeue: bool = False) -> None: ...


# -- capabilities a channel may add to the contract above --------------------------


class ConfirmListener(Protocol):
    """Receives a confirm-mode channel's publisher confirms.

    The broker numbers the publishes of a channel in confirm mode 1, 2, 3, ...
    in publish order and settles each with an ack or a nack;
    ``multiple=True`` settles every tag up to ``delivery_tag``. The calls run
    on the thread using the channel (while it waits for confirms, publishes,
    or drains the connection).
    """

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        """The broker took responsibility for the publish(es)."""
        ...

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        """The broker refused the publish(es); whether they were stored is unknown."""
        ...


class PublisherConfirms(Protocol):
    """Capability: publisher confirms (every built-in transport's channels have it)."""

    #: Whoever is told of this channel's confirms; the channel keeps it until it
    #: is replaced or set to ``None`` (so its holder can be found again).
    confirm_listener: ConfirmListener | None

    @property
    def confirms_synchronously(self) -> bool:
        """True when :meth:`~Channel.basic_publish` returns only once the broker has the message.

        Then nothing is ever outstanding and :attr:`confirm_listener` is never
        called (``memory://``, ``redis://``; their returns reach
        :attr:`Channel.on_return` before the publish returns too). False when
        acks arrive later, as the connection is read (``amqp://``).
        """
        ...

    def confirm_select(self, nowait: bool = False) -> None:
        """Put the channel in confirm mode (``confirm.select``); publishes are numbered from 1."""
        ...

    def wait_confirms(self, timeout: float) -> None:
        """Dispatch this channel's next confirms on the calling thread, waiting up to ``timeout`` s.

        What a thread waiting for its publishes calls: the channel's acks,
        nacks and returns (and a channel error) arrive here, while other
        channels' events go to the threads that use them. A channel that
        :attr:`confirms_synchronously` never has one outstanding and returns at once.

        Raises:
            TimeoutError: nothing arrived for the channel in time.
        """
        ...


class WriteHold(Protocol):
    """One :meth:`BufferedWrites.buffered_writes` block, usable with or without ``with``."""

    def start(self) -> None:
        """Begin holding outgoing frames (once)."""
        ...

    def release(self, quiet: bool = False) -> None:
        """Send what is held and stop holding (once).

        ``quiet=True`` (while another exception propagates) drops the
        connection on a failed send instead of raising.
        """
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BufferedWrites(Protocol):
    """Capability: coalescing the frames of many publishes into fewer socket writes."""

    def buffered_writes(self) -> WriteHold:
        """Hold this connection's outgoing frames meanwhile and send them in large writes.

        For pipelined publishing. Whatever the connection reads first sends
        what is held, so nobody waits for the answer to a frame still held.
        A transport whose publishes complete synchronously has nothing to
        hold and returns a block that does nothing.
        """
        ...


@runtime_checkable
class ConfirmingChannel(Channel, PublisherConfirms, BufferedWrites, Protocol):
    """A channel with both capabilities: what pipelined publisher confirms are built on.

    Every built-in transport's channels are.
    """


class TransportConnection(abc.ABC):
    """One live connection to one broker, opened by :meth:`Transport.connect`.

    Threading: a connection may be shared by threads, each using channels of
    its own (a channel is for one thread at a time; acks, rejects and nacks
    may come from any thread). Every built-in transport keeps what one
    thread writes whole, dispatches a channel's events on the thread using
    it, and wakes every waiting thread with an error when the link is lost.
    :meth:`drain_events` may run on several threads at once (each gets the
    events of the channels it used last, and the deliveries of consumers
    whose thread does not drain); :meth:`send_heartbeat` may be called from
    any thread.
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
    def frame_max(self) -> int:
        """The negotiated maximum frame size in bytes."""

    @property
    @abc.abstractmethod
    def is_blocked(self) -> bool:
        """True while the broker has blocked this connection (``connection.blocked``)."""

    @property
    def failure(self) -> BaseException | None:
        """The connection-level error that found this connection broken, if one did.

        ``None`` while it is open and after a clean :meth:`close`. The façade
        passes it to ``on_close`` hooks when it finds a connection broken by a
        channel call that it did not make itself.
        """
        return None

    @abc.abstractmethod
    def channel(self, owner: object | None = None) -> Channel:
        """Open a new channel; ``owner`` is stored as the channel's :attr:`Channel.owner`."""

    @abc.abstractmethod
    def drain_events(self, timeout: float | None = None) -> None:
        """Wait for and dispatch at least one event (a delivery, a method reply).

        Returns after dispatching; raises :class:`TimeoutError` (``socket.timeout``)
        when nothing arrived within ``timeout`` seconds in total, even if
        heartbeat frames kept arriving meanwhile. ``None`` waits without limit,
        but a silent peer is still detected when heartbeats are on.
        """

    @abc.abstractmethod
    def heartbeat_tick(self, rate: int = 2) -> None:
        """Send a heartbeat if one is due; raise if the peer has gone silent.

        Raises:
            broker.errors.HeartbeatTimeout: nothing was received for more than
                two heartbeat intervals.
        """

    @abc.abstractmethod
    def send_heartbeat(self) -> None:
        """Send one heartbeat frame now. Safe to call from a non-owner thread."""

    @abc.abstractmethod
    def verify(self) -> bool:
        """Cheap liveness check without blocking: False when the link is known dead."""

    @abc.abstractmethod
    def close(self, timeout: float = 2.0) -> None:
        """Close gracefully, waiting at most ``timeout`` seconds, then tear down.

        Never raises connection errors: a broken link is simply torn down.
        """

    @abc.abstractmethod
    def teardown(self) -> None:
        """Drop the connection at once without any handshake (for broken sockets)."""


class Transport(abc.ABC):
    """A transport class: facts about it, and a factory for its connections.

    Subclasses set the class attributes and implement :meth:`connect`.
    Constructing a transport performs no I/O.
    """

    #: The registry name (``'amqp'``, ``'memory'``, ...).
    name: ClassVar[str]
    #: Port used when a URL gives none; ``None`` for transports without sockets.
    default_port: ClassVar[int | None]
    #: Port used when a URL gives none and TLS is on.
    default_ssl_port: ClassVar[int | None] = None
    #: Login used when neither the URL nor the ``userid``/``password`` keywords give
    #: one (``None``: log in only when asked to).
    default_userid: ClassVar[str | None] = "guest"
    default_password: ClassVar[str | None] = "guest"
    capabilities: ClassVar[Capabilities]

    # Transports translate driver errors, so these are the same for all.
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (BrokerConnectionError,)
    channel_errors: ClassVar[tuple[type[BaseException], ...]] = (ChannelError,)
    recoverable_connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        RecoverableConnectionError,
    )
    recoverable_channel_errors: ClassVar[tuple[type[BaseException], ...]] = (
        RecoverableChannelError,
    )
    irrecoverable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        IrrecoverableConnectionError,
        IrrecoverableChannelError,
    )

    @abc.abstractmethod
    def connect(
        self,
        params: ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> TransportConnection:
        """Open a connection to the broker described by ``params``.

        Raises:
            broker.errors.AuthenticationError: the broker refused the login.
            broker.errors.RecoverableConnectionError: refused, reset, timed out.
            broker.errors.IrrecoverableConnectionError: other fatal failures.
        """

    @classmethod
    def check_params(cls, params: ConnectionParams) -> None:
        """Refuse, without I/O, parameters this transport could never connect with.

        :class:`broker.Connection` calls this for every alternate when it is
        constructed, so that a malformed URL or option fails there rather than
        on the first connect. The default accepts everything; ``connect`` must
        still validate what it uses.

        Raises:
            broker.errors.ConfigurationError: naming the parameter, the value
                and what is allowed.
        """
        return  # nothing to refuse in general

    def driver_version(self) -> str:
        """The version of the client library this transport drives (kombu's method).

        ``'N/A'`` for a transport without one (the in-process ``memory://``).
        """
        return "N/A"

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self.name!r}>"
