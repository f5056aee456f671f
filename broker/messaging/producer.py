"""Producer (and, re-exported from :mod:`broker.messaging.consumer`, Consumer).

A :class:`Producer` publishes to one exchange through a channel. Given a
:class:`broker.Connection` it uses the connection's default channel -- or,
when publisher confirms are on, a channel of its own, because a channel in
confirm mode numbers *every* publish made on it and sharing one would
confuse the count.

Publisher confirms, per message (``confirm_publish=True``) or pipelined
(``with producer.confirms() as batch:``), are described in
``docs/publishing.rst`` and :mod:`broker.messaging.confirms`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from broker.entities.base import normalize_delivery_mode
from broker.entities.owner import ChannelOwner, Lent, as_owner, owner_of
from broker.entities.queue import PERSISTENT, Exchange, Queue, maybe_declare
from broker.errors import (
    BrokerError,
    ConfigurationError,
    MessageNacked,
    MessageUnroutable,
    RecoverableChannelError,
)
from broker.instrumentation import hooks as instrumentation
from broker.messaging.confirms import (
    DEFAULT_CONFIRM_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    ConfirmBatch,
    ConfirmTracker,
)
from broker.messaging.consumer import Consumer
from broker.messaging.publishing import (
    check_property_keywords,
    encode,
    expiration_ms,
    retry_options,
)
from broker.timeouts import check_seconds

if TYPE_CHECKING:
    from transports.base import ConfirmingChannel

__all__ = ["Consumer", "Producer"]

#: ``on_return(exception, exchange, routing_key, message)`` (kombu's signature).
OnReturn = Callable[[MessageUnroutable, str, str, Any], Any]


class Producer:
    """Publishes messages to an exchange.

    Args:
        channel: a channel, or a :class:`broker.Connection` (its default
            channel, or a channel of its own when confirming).
        exchange: default :class:`~broker.entities.exchange.Exchange` (or name); the
            default exchange ``''`` when omitted.
        routing_key: default routing key.
        serializer: default serializer name (see :mod:`broker.messaging.serialization`).
        auto_declare: declare ``exchange`` when the producer gets its channel.
        compression: default compression (``'zlib'``, ``'bz2'``, ``'lzma'``).
        on_return: ``on_return(exc, exchange, routing_key, message)`` for
            unroutable ``mandatory`` messages; without it, confirming publishes
            raise :class:`~broker.errors.MessageUnroutable`.
        confirm_publish: wait for a publisher confirm on every publish;
            ``None`` reads ``transport_options['confirm_publish']``.
        confirm_timeout: default seconds to wait for a confirm.
        connection: the :class:`broker.Connection` ``channel`` belongs to, when
            the channel cannot tell.
    """

    def __init__(
        self,
        channel: Any,
        exchange: Exchange | str | None = None,
        routing_key: str | None = None,
        serializer: str | None = None,
        auto_declare: bool = True,
        compression: str | None = None,
        on_return: OnReturn | None = None,
        confirm_publish: bool | None = None,
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        connection: ChannelOwner | None = None,
    ) -> None:
        self.routing_key = routing_key or ""
        self.serializer = serializer
        self.auto_declare = auto_declare
        self.compression = compression
        self.on_return = on_return
        self.confirm_timeout = check_seconds(confirm_timeout, "confirm_timeout")
        self._channel: Any = None
        self._owns_channel = False
        self._tracker: ConfirmTracker | None = None
        self._batch: ConfirmBatch | None = None
        self._retry_publish: Callable[..., None] | None = None
        self.exchange = exchange
        owner = as_owner(channel)
        #: Made from a connection: follows its default channel when that reopens.
        self._follows_default = owner is not None
        self._connection: ChannelOwner | None
        if owner is not None:
            self._connection = owner
            channel = None
        else:
            self._connection = connection if connection is not None else owner_of(channel)
        if confirm_publish is None and self._connection is not None:
            confirm_publish = bool(self._connection.transport_options.get("confirm_publish"))
        self.confirm_publish = bool(confirm_publish)
        if channel is not None and self.confirm_publish and self._is_shared(channel):
            channel = None  # confirm on a channel of our own, not the shared one
        if channel is not None:
            self._attach(channel)
        # Made from a connection, the producer does no I/O until its first
        # publish (which opens the channel and declares the exchange), so that
        # publish(retry=True) covers a broker that fails in between.

    # -- configuration ------------------------------------------------------------

    @property
    def exchange(self) -> Exchange:
        """The default exchange."""
        return self._exchange

    @exchange.setter
    def exchange(self, value: Exchange | str | None) -> None:
        if value is None:
            value = Exchange("")
        elif isinstance(value, str):
            value = Exchange(value)
        elif not isinstance(value, Exchange):
            raise ConfigurationError(f"exchange must be an Exchange or a name, got {value!r}")
        self._exchange = value
        self._exchange_name = value.name
        self._default_mode = value.default_delivery_mode

    @property
    def connection(self) -> ChannelOwner | None:
        """The :class:`broker.Connection` this producer publishes through, if known."""
        return self._connection

    @property
    def channel(self) -> Any:
        """The channel (opened on first use when the producer was given a connection)."""
        return self._get_channel()

    def _get_channel(self) -> Any:
        channel = self._channel
        if channel is None:
            conn = self._connection
            if conn is None:
                raise ConfigurationError("this producer has no channel: revive() it first")
            if self.confirm_publish or self._batch is not None or not self._follows_default:
                # A channel of its own: confirm mode numbers every publish on a
                # channel, and a producer given a channel of its own (one thread's)
                # must not move onto the shared default channel after a reconnect.
                channel = conn.channel()
                self._owns_channel = True
            else:
                channel = conn.default_channel
            self._attach(channel)
        return channel

    def _is_shared(self, channel: Any) -> bool:
        # The connection's default channel is shared by every simple user of the
        # connection: putting it in confirm mode would break their publishes' count.
        conn = self._connection
        return conn is not None and conn.connected and conn.default_channel is channel

    def _attach(self, channel: Any) -> None:
        self._channel = channel
        if self.confirm_publish or self._batch is not None:
            self._tracker = self._tracker_for(channel)
        elif self.on_return is not None:
            _underlying(channel).on_return = self._handle_return
        if self.auto_declare and self._exchange_name and not self._exchange.no_declare:
            self._exchange = self._exchange.bind(channel, self._connection)
            maybe_declare(self._exchange)

    def _tracker_for(self, channel: ConfirmingChannel) -> ConfirmTracker:
        # Producers sharing a confirm-mode channel must share its count, also
        # through successive pool leases of it: the count is the channel's.
        channel = _underlying(channel)
        found = channel.confirm_listener
        if isinstance(found, ConfirmTracker) and found.channel is channel and not found.broken:
            return found
        tracker = ConfirmTracker(channel)
        if not tracker.synchronous and self._connection is None:
            tracker.detach()
            raise ConfigurationError(
                "publisher confirms need the broker.Connection to read acks from: create the "
                "producer from the connection, or pass connection="
            )
        return tracker

    def _handle_return(
        self, reply_code: int, reply_text: str, exchange: str, routing_key: str, message: Any
    ) -> None:
        if self.on_return is not None:
            exc = MessageUnroutable(
                f"message to exchange {exchange!r} with routing key {routing_key!r} was "
                f"returned: {reply_code} {reply_text}"
            )
            self.on_return(exc, exchange, routing_key, message)

    # -- publishing ---------------------------------------------------------------

    def publish(
        self,
        body: Any,
        routing_key: str | None = None,
        delivery_mode: int | str | None = None,
        mandatory: bool = False,
        priority: int = 0,
        content_type: str | None = None,
        content_encoding: str | None = None,
        serializer: str | None = None,
        headers: Mapping[str, Any] | None = None,
        compression: str | None = None,
        exchange: Exchange | str | None = None,
        retry: bool = False,
        retry_policy: Mapping[str, Any] | None = None,
        declare: Iterable[Exchange | Queue] | None = None,
        expiration: float | None = None,
        confirm_timeout: float | None = None,
        **properties: Any,
    ) -> None:
        """Publish one message.

        Args:
            body: bytes (sent raw), str (text/plain) or any value the serializer
                takes (JSON by default).
            routing_key: overrides the producer's routing key.
            delivery_mode: 1/``'transient'`` or 2/``'persistent'``; default:
                the exchange's, i.e. persistent for durable exchanges.
            mandatory: return the message if no queue takes it.
            priority: 0-255 (needs a queue with ``max_priority``).
            content_type, content_encoding: send ``body`` (bytes or str) as is,
                labelled so; no serializer runs.
            serializer: overrides the producer's serializer.
            headers: application headers (never modified).
            compression: ``'zlib'``/``'gzip'``, ``'bz2'``, ``'lzma'``.
            exchange: overrides the producer's exchange (must exist).
            retry: on a recoverable connection or channel error, reconnect
                (failing over) and publish again, per ``retry_policy`` or
                :data:`broker.retry.policy.DEFAULT_RETRY_POLICY`; a confirming
                producer also publishes again, after the policy's backoff, when
                the broker nacks (a quorum queue electing a leader does). May
                publish twice.
            retry_policy: keywords of :meth:`broker.Connection.ensure`; what
                it leaves out keeps the default policy's value.
            declare: entities to declare first (once per connection).
            expiration: per-message TTL in seconds (a non-negative number; sent
                as whole milliseconds, at most ten years).
            confirm_timeout: seconds to wait for a confirm (confirming producers).
            **properties: other AMQP properties (``message_id``,
                ``correlation_id``, ``reply_to``, ``timestamp``, ``type``...).

        Raises:
            ConfigurationError: before anything is sent, so the producer and its
                connection stay usable: a keyword is neither a parameter nor an
                AMQP property; a property, header or the routing key is outside
                what RabbitMQ accepts (the same limits on every transport, see
                :mod:`transports._shared.validation`); ``confirm_timeout`` is
                not a number of seconds >= 0.
            MessageNacked, MessageUnroutable, ConfirmTimeout: confirming producers.
            SerializationError: the body cannot be encoded.
            BrokerConnectionError, ChannelError: the publish failed.
        """
        if properties:
            check_property_keywords(properties)
        if confirm_timeout is not None:
            confirm_timeout = check_seconds(confirm_timeout, "confirm_timeout")
        if compression is None:
            compression = self.compression
        if (
            content_type is None
            and body.__class__ is bytes
            and serializer is None
            and self.serializer is None
            and not compression
        ):
            # encode() of the usual body, inlined: bytes are sent as they are.
            content_type, content_encoding = "application/data", "binary"
            properties["content_type"] = content_type
            properties["content_encoding"] = content_encoding
            if headers:
                properties["application_headers"] = headers
        else:
            body, content = encode(
                body, serializer or self.serializer, content_type, content_encoding,
                compression, headers,
            )  # fmt: skip
            properties.update(content)
            content_type, content_encoding = content["content_type"], content["content_encoding"]
        if priority:
            properties["priority"] = priority
        if expiration is not None:
            properties["expiration"] = expiration_ms(expiration)
        if "reply_to" in properties and isinstance(properties["reply_to"], Queue):
            properties["reply_to"] = properties["reply_to"].name
        if exchange is None:
            exchange_name = self._exchange_name
            mode = self._default_mode if delivery_mode is None else delivery_mode
        else:
            exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
            if delivery_mode is None:
                delivery_mode = (
                    exchange.default_delivery_mode if isinstance(exchange, Exchange) else PERSISTENT
                )
            mode = delivery_mode
        properties["delivery_mode"] = (
            mode if mode.__class__ is int else normalize_delivery_mode(mode)
        )
        if routing_key is None:
            routing_key = self.routing_key
        if instrumentation.active is not None:
            send = self._retrying(retry_policy) if retry else self._publish
            # A partial, not a lambda: a closure would make publish's locals cells, a cost
            # every publish would pay.
            instrumentation.active.publish(
                self._connection, body, properties, exchange_name, routing_key,
                functools.partial(send, body, properties, exchange_name, routing_key, mandatory,
                                  declare, confirm_timeout),
            )  # fmt: skip
            return
        channel = self._channel
        if retry or declare or channel is None or self._tracker is not None:
            publish = self._retrying(retry_policy) if retry else self._publish
            publish(body, properties, exchange_name, routing_key, mandatory, declare,
                    confirm_timeout)  # fmt: skip
            return
        # The plain path, inlined: it is most of what a producer does.
        try:
            if len(properties) == 3:  # only the three set above: keywords beat ** unpacking
                msg = channel.prepare_message(
                    body,
                    content_type=content_type,
                    content_encoding=content_encoding,
                    delivery_mode=properties["delivery_mode"],
                )
            else:
                msg = channel.prepare_message(body, **properties)
            channel.basic_publish(msg, exchange_name, routing_key, mandatory)
        except RecoverableChannelError:
            if not self._follows_default or channel.is_open:
                raise
            # A channel error closed the shared default channel earlier; this
            # message was refused before it left, so sending it on the
            # reopened default channel cannot duplicate it.
            self.revive(self._connection)
            self._publish(body, properties, exchange_name, routing_key, mandatory, None, None)

    def _publish(
        self,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        mandatory: bool,
        declare: Iterable[Exchange | Queue] | None,
        confirm_timeout: float | None,
    ) -> None:
        channel = self._channel
        if channel is None:
            channel = self._get_channel()
        tracker = self._tracker
        if not channel.is_open or (tracker is not None and tracker.broken):
            # A channel error closed our channel (or the confirm count became
            # unreliable): continue on a fresh one where that is ours to do.
            if self._follows_default or self._owns_channel:
                self.revive(self._connection)
            elif tracker is not None:
                self.revive(channel)
            channel = self._get_channel()
            tracker = self._tracker
        if declare:
            for entity in declare:
                self.maybe_declare(entity)
        msg = channel.prepare_message(body, **properties)
        if tracker is None:
            channel.basic_publish(msg, exchange, routing_key, mandatory)
            return
        batch = self._batch
        if batch is not None:
            batch.use(tracker)
            tag = tracker.publish(msg, exchange, routing_key, mandatory, True)
            batch.track(tracker, tag, properties.get("message_id"))
            return
        if not self.confirm_publish:
            tracker.publish(msg, exchange, routing_key, mandatory, False)
            return
        tag = tracker.publish(msg, exchange, routing_key, mandatory, True)
        timeout = self.confirm_timeout if confirm_timeout is None else confirm_timeout
        tracker.wait(tag, timeout, self.drain_confirms, lambda: self.is_blocked)
        self._check_outcome(tracker, tag)

    def _check_outcome(self, tracker: ConfirmTracker, tag: int) -> None:
        if tag in tracker.nacked:
            tracker.nacked.discard(tag)
            tracker.returns.clear()
            error = MessageNacked(f"the broker nacked message {tag} on channel {tracker.channel!r}")
            self.discard_channel()
            raise error
        if tracker.returns:
            returned = tracker.returns[-1]
            tracker.returns.clear()
            if self.on_return is None:
                raise returned.error()
            self.on_return(
                returned.error(), returned.exchange, returned.routing_key, returned.message
            )

    def _retrying(self, retry_policy: Mapping[str, Any] | None) -> Callable[..., None]:
        conn = self._connection
        if conn is None:
            raise ConfigurationError("publish(retry=True) needs the producer's broker.Connection")
        if retry_policy is None:
            if self._retry_publish is None:
                self._retry_publish = conn.ensure(self, self._publish, **retry_options(None))
            return self._retry_publish
        return conn.ensure(self, self._publish, **retry_options(retry_policy))

    def drain_confirms(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for this producer's confirms, dispatched on this thread.

        Only the producer's own channel is waited on: threads sharing the
        connection get their own confirms, deliveries and replies.
        """
        conn = self._connection
        # Only confirm waits drain, and _tracker_for refuses to wait without a connection.
        assert conn is not None
        tracker = self._tracker
        if tracker is None:
            conn.drain_events(timeout=timeout)
        else:
            conn.wait_confirms(tracker.channel, timeout)

    @property
    def is_blocked(self) -> bool:
        """Whether the broker blocks this producer's connection (``connection.blocked``)."""
        conn = self._connection
        return conn is not None and conn.is_blocked

    # -- pipelined confirms -------------------------------------------------------

    def confirms(
        self, timeout: float = DEFAULT_CONFIRM_TIMEOUT, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ) -> ConfirmBatch:
        """Publish many messages with one confirm wait at the end.

        ``with producer.confirms(timeout=30) as batch:`` -- see
        :class:`~broker.messaging.confirms.ConfirmBatch` for what leaving the block raises.
        At most ``max_in_flight`` publishes are outstanding at once.
        """
        return ConfirmBatch(self, timeout=timeout, max_in_flight=max_in_flight)

    def enter_batch(self, batch: ConfirmBatch) -> None:
        """Route this producer's publishes through ``batch`` (called by ``ConfirmBatch``).

        Raises:
            ConfigurationError: a ``confirms()`` block of this producer is already open.
        """
        if self._batch is not None:
            raise ConfigurationError("this producer is already inside a confirms() block")
        self._batch = batch
        channel = self._channel
        if self._tracker is None and channel is not None:
            if self._is_shared(channel):
                self.revive(self._connection)  # to a confirm-mode channel of our own
            else:
                self._tracker = self._tracker_for(channel)

    def leave_batch(self, batch: ConfirmBatch) -> None:
        """Stop routing publishes through ``batch`` (called by ``ConfirmBatch``)."""
        if self._batch is batch:
            self._batch = None

    def discard_channel(self) -> None:
        """Publish on a new channel from now on, if the current one is the producer's own.

        Called after a nack: RabbitMQ (3.10) keeps nacking every later publish
        on a channel whose first publish to a quorum queue fell in a leader
        election, while a new channel is accepted at once. A channel the
        producer was given is kept.
        """
        if self._owns_channel:
            self._release_channel()

    # -- lifecycle ----------------------------------------------------------------

    def declare(self) -> None:
        """Declare the producer's exchange."""
        if self._exchange_name:
            self.maybe_declare(self._exchange)

    def maybe_declare(self, entity: Exchange | Queue) -> bool:
        """Declare ``entity`` through this producer's channel unless already declared.

        An unbound entity (or one whose channel closed) is bound to the
        producer's channel in place, so a server-assigned queue name is written
        back into it; one bound to another open channel is declared through a copy.
        """
        channel = self._get_channel()
        if not entity.is_bound or not entity.channel.is_open:
            entity.revive(channel, self._connection)
        elif entity.channel is not channel:
            entity = entity.bind(channel, self._connection)
        return maybe_declare(entity)

    def revive(self, channel: Any) -> None:
        """Move to a new channel or connection (after a reconnect)."""
        owner = as_owner(channel)
        if owner is not None:
            self._connection, channel = owner, None
        else:
            owner = owner_of(channel)
            if owner is not None:
                self._connection = owner
        self._release_channel()
        private = self.confirm_publish or self._batch is not None or not self._follows_default
        if channel is not None and (not private or not self._is_shared(channel)):
            self._attach(channel)

    def detach_channel(self) -> Any:
        """Let go of the producer's own channel without closing it, and return it.

        For a pool that keeps a connection's confirm channel for the next
        producer to ride that connection (see :meth:`adopt_channel`): opening
        one costs two round trips (``channel.open``, ``confirm.select``). The
        channel keeps its confirm count, which the adopter takes over. Returns
        ``None``, after closing it, when the channel is not the producer's own,
        is closed, or its confirm count became unreliable.
        """
        channel, tracker = self._channel, self._tracker
        if not self._owns_channel or channel is None:
            return None
        if not channel.is_open or (tracker is not None and tracker.broken):
            self._release_channel()
            return None
        self._channel, self._tracker, self._owns_channel = None, None, False
        return channel

    def adopt_channel(self, channel: Any) -> None:
        """Publish on ``channel`` from now on, as the producer's own (from :meth:`detach_channel`).

        Unlike :meth:`revive` with a channel, the producer treats it as one it
        opened: it closes it on :meth:`close` and replaces it after a nack.
        """
        self.revive(channel)
        self._owns_channel = self._channel is channel

    def _release_channel(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.detach()
        channel, self._channel = self._channel, None
        if channel is not None and self._owns_channel:
            with contextlib.suppress(BrokerError):
                channel.close()
        self._owns_channel = False

    def close(self) -> None:
        """Release the producer (closing its own confirm channel, if any)."""
        self._release_channel()

    release = close

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        chan = f"chan:{self._channel.channel_id}" if self._channel is not None else "unbound"
        mode = " confirming" if self.confirm_publish else ""
        return f"<Producer exchange={self._exchange_name!r} {chan}{mode}>"


def _underlying(channel: Any) -> Any:
    """The channel itself when ``channel`` is a pool's lease of it (its state is set there)."""
    return channel.resource if isinstance(channel, Lent) else channel
