"""The asyncio Producer: ``await producer.publish(...)``, per-message and pipelined confirms.

The sibling of :class:`broker.Producer`, with the same options and the same
encoding of bodies and properties. It always belongs to a
:class:`broker.aio.Connection` (confirms are read from it). Without confirms
it publishes on the connection's default channel; confirming (per message,
``confirm_publish=True``, or inside ``async with producer.confirms():``) it
uses a confirm-mode channel of its own, since confirm mode numbers every
publish of a channel.

Many tasks may publish through one producer at once: a publish's frames are
written whole, and its delivery tag is counted in the same step as the write.
Cancelling a publish leaves the producer usable: a cancelled publish either
wrote nothing or was written whole (and, confirming, is counted).

A nack means the broker did not take responsibility for the message: with
``retry=True`` it is published again within the retry policy, as after a
lost connection, and either way the producer moves to a new confirm channel
of its own (:meth:`Producer.discard_channel`), as the synchronous one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from broker.aio.confirms import ConfirmBatch, ConfirmTracker
from broker.aio.declare import maybe_declare
from broker.entities.base import PERSISTENT, normalize_delivery_mode
from broker.entities.exchange import Exchange
from broker.entities.queue import Queue
from broker.errors import BrokerError, ConfigurationError, MessageUnroutable
from broker.instrumentation import hooks as instrumentation
from broker.messaging.confirms import DEFAULT_CONFIRM_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, Returned
from broker.messaging.publishing import (
    check_property_keywords,
    encode,
    expiration_ms,
    retry_options,
)
from broker.timeouts import check_seconds
from transports.base_aio import AsyncChannel, AsyncConfirmingChannel

if TYPE_CHECKING:
    from broker.aio.connection import Connection

__all__ = ["Producer"]

#: ``on_return(exception, exchange, routing_key, message)`` (kombu's signature).
OnReturn = Callable[[MessageUnroutable, str, str, Any], Any]


class Producer:
    """Publishes messages to an exchange, on asyncio.

    Args:
        connection: the :class:`broker.aio.Connection`.
        exchange: the default exchange; ``routing_key``, ``serializer``,
            ``auto_declare``, ``compression``, ``on_return``,
            ``confirm_publish`` and ``confirm_timeout`` mean what they mean
            for :class:`broker.Producer`.
        channel: publish on this channel instead of the connection's default
            (or own confirm-mode) channel.
    """

    def __init__(
        self,
        connection: Connection,
        exchange: Exchange | str | None = None,
        routing_key: str | None = None,
        serializer: str | None = None,
        auto_declare: bool = True,
        compression: str | None = None,
        on_return: OnReturn | None = None,
        confirm_publish: bool | None = None,
        *,
        channel: AsyncChannel | None = None,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
    ) -> None:
        self.connection = connection
        self.routing_key = routing_key or ""
        self.serializer = serializer
        self.auto_declare = auto_declare
        self.compression = compression
        self.on_return = on_return
        self.confirm_timeout = confirm_timeout
        if confirm_publish is None:
            confirm_publish = bool(connection.transport_options.get("confirm_publish"))
        self.confirm_publish = bool(confirm_publish)
        self.exchange = exchange
        self._given = channel
        self._channel: AsyncChannel | None = None
        self._owns_channel = False
        self._tracker: ConfirmTracker | None = None
        self._batch: ConfirmBatch | None = None
        self._attaching = asyncio.Lock()

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

    @property
    def channel(self) -> AsyncChannel | None:
        """The channel in use (``None`` until the first publish)."""
        return self._channel

    @property
    def is_blocked(self) -> bool:
        """Whether the broker blocks the connection (``connection.blocked``)."""
        return self.connection.is_blocked

    async def _ready_channel(self) -> AsyncChannel:
        channel, tracker = self._channel, self._tracker
        if channel is not None and channel.is_open and (tracker is None or not tracker.broken):
            return channel
        async with self._attaching:  # concurrent first publishes open one channel
            channel = self._channel
            if channel is None or not channel.is_open:
                await self._release_channel()
                await self._attach(await self._open_channel())
                channel = self._channel
            assert channel is not None
            return channel

    async def _open_channel(self) -> AsyncChannel:
        given = self._given
        if given is not None and given.is_open:
            return given
        conn = self.connection
        if self.confirm_publish or self._batch is not None:
            self._owns_channel = True
            return await conn.channel()
        return await conn.default_channel()

    async def _attach(self, channel: AsyncChannel) -> None:
        if self.confirm_publish or self._batch is not None:
            assert isinstance(channel, AsyncConfirmingChannel)
            self._tracker = await ConfirmTracker.attach(channel)
        elif self.on_return is not None:
            channel.on_return = self._handle_return
        self._channel = channel
        if self.auto_declare and self._exchange.name and not self._exchange.no_declare:
            await maybe_declare(self._exchange, channel, self.connection)

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

    async def publish(
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
        """Publish one message; the arguments are those of :meth:`broker.Producer.publish`.

        With ``retry=True`` a confirming producer also publishes again, after
        the policy's backoff, when the broker nacks (a quorum queue electing a
        leader does); once the policy is spent, ``OperationalError`` is raised
        with the ``MessageNacked`` as its cause. May publish twice.

        Raises:
            MessageNacked, MessageUnroutable, ConfirmTimeout: confirming producers.
            SerializationError: the body cannot be encoded.
            BrokerConnectionError, ChannelError: the publish failed.
        """
        if properties:
            check_property_keywords(properties)
        if confirm_timeout is not None:
            confirm_timeout = check_seconds(confirm_timeout, "confirm_timeout")
        body, content = encode(
            body, serializer or self.serializer, content_type, content_encoding,
            compression if compression is not None else self.compression, headers,
        )  # fmt: skip
        properties.update(content)
        if priority:
            properties["priority"] = priority
        if expiration is not None:
            properties["expiration"] = expiration_ms(expiration)
        if isinstance(properties.get("reply_to"), Queue):
            properties["reply_to"] = properties["reply_to"].name
        if isinstance(exchange, str):
            exchange_name, default_mode = exchange, PERSISTENT
        else:
            target = self._exchange if exchange is None else exchange
            exchange_name, default_mode = target.name, target.default_delivery_mode
        mode = default_mode if delivery_mode is None else delivery_mode
        properties["delivery_mode"] = normalize_delivery_mode(mode)
        if routing_key is None:
            routing_key = self.routing_key
        if retry:
            publish = self.connection.ensure(self, self._publish, **retry_options(retry_policy))
        else:
            publish = self._publish
        if instrumentation.active is not None:
            await instrumentation.active.publish_async(self.connection, body, properties,
                exchange_name, routing_key, functools.partial(publish, body, properties,
                    exchange_name, routing_key, mandatory, declare, confirm_timeout))  # fmt: skip
            return
        await publish(body, properties, exchange_name, routing_key, mandatory, declare,
                      confirm_timeout)  # fmt: skip

    async def _publish(
        self,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        mandatory: bool,
        declare: Iterable[Exchange | Queue] | None,
        confirm_timeout: float | None,
    ) -> None:
        channel = await self._ready_channel()
        if declare:
            for entity in declare:
                await maybe_declare(entity, channel, self.connection)
        msg = channel.prepare_message(body, **properties)
        tracker = self._tracker
        if tracker is None:
            await channel.basic_publish(msg, exchange, routing_key, mandatory)
            return
        batch = self._batch
        if batch is not None:
            batch.use(tracker)
            tag = await tracker.publish(msg, exchange, routing_key, mandatory, True)
            await batch.track(tracker, tag, properties.get("message_id"))
            return
        if not self.confirm_publish:
            await tracker.publish(msg, exchange, routing_key, mandatory, False)
            return
        tag = await tracker.publish(msg, exchange, routing_key, mandatory, True)
        timeout = self.confirm_timeout if confirm_timeout is None else confirm_timeout
        await tracker.wait(tag, timeout, self.drain_confirms, lambda: self.is_blocked)
        outcome = tracker.take_outcome(tag)
        if isinstance(outcome, Returned):
            if self.on_return is None:
                raise outcome.error()
            self.on_return(outcome.error(), outcome.exchange, outcome.routing_key, outcome.message)
        elif outcome is not None:
            await self.discard_channel(tracker)
            raise outcome

    async def drain_confirms(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the connection's next event (a confirm)."""
        await self.connection.drain_events(timeout=timeout)

    async def maybe_declare(self, entity: Exchange | Queue) -> bool:
        """Declare ``entity`` through this producer's channel unless already declared."""
        return await maybe_declare(entity, await self._ready_channel(), self.connection)

    async def declare(self) -> None:
        """Declare the producer's exchange."""
        if self._exchange.name:
            await self.maybe_declare(self._exchange)

    # -- pipelined confirms -------------------------------------------------------

    def confirms(
        self, timeout: float = DEFAULT_CONFIRM_TIMEOUT, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ) -> ConfirmBatch:
        """Publish many messages with one confirm wait at the end.

        ``async with producer.confirms(timeout=30) as batch:`` -- see
        :class:`broker.aio.confirms.ConfirmBatch`.
        """
        return ConfirmBatch(self, timeout=timeout, max_in_flight=max_in_flight)

    async def enter_batch(self, batch: ConfirmBatch) -> None:
        """Route this producer's publishes through ``batch`` (called by the batch).

        Raises:
            ConfigurationError: a ``confirms()`` block of this producer is already open.
        """
        if self._batch is not None:
            raise ConfigurationError("this producer is already inside a confirms() block")
        self._batch = batch
        if self._tracker is None and self._channel is not None:
            await self._release_channel()  # to a confirm-mode channel of its own

    def leave_batch(self, batch: ConfirmBatch) -> None:
        """Stop routing publishes through ``batch``."""
        if self._batch is batch:
            self._batch = None

    async def discard_channel(self, tracker: ConfirmTracker | None = None) -> None:
        """Publish on a new channel from now on, if the current one is the producer's own.

        Called after a nack: RabbitMQ (3.10) keeps nacking every later publish
        on a channel whose first publish to a quorum queue fell in a leader
        election, while a new channel is accepted at once. A channel the
        producer was given is kept. The old channel closes once no task waits
        for a confirm on it (:meth:`ConfirmTracker.retire
        <broker.aio.confirms.ConfirmTracker.retire>`).

        Args:
            tracker: the confirm tracker of the channel that was nacked; when
                another task already moved the producer on, nothing changes.
        """
        current = self._tracker
        if not self._owns_channel or current is None:
            return
        if tracker is not None and tracker is not current:
            return
        self._tracker, self._channel, self._owns_channel = None, None, False
        await current.retire()

    # -- lifecycle ----------------------------------------------------------------

    async def revive(self, channel: Any) -> None:
        """Move to a new channel (after a reconnect); confirming producers open their own."""
        await self._release_channel()
        if (
            not self.confirm_publish
            and self._batch is None
            and self._given is None
            and isinstance(channel, AsyncConfirmingChannel)
        ):
            await self._attach(channel)

    async def _release_channel(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.detach()
        channel, self._channel = self._channel, None
        if channel is not None and self._owns_channel:
            with contextlib.suppress(BrokerError):
                await channel.close()
        self._owns_channel = False

    async def close(self) -> None:
        """Release the producer (closing its own confirm channel, if any)."""
        await self._release_channel()

    release = close

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        chan = f"chan:{self._channel.channel_id}" if self._channel is not None else "unbound"
        mode = " confirming" if self.confirm_publish else ""
        return f"<aio.Producer exchange={self._exchange.name!r} {chan}{mode}>"
