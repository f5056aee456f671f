"""A received message: its body, properties, and the ack/reject state machine.

A :class:`Message` starts ``RECEIVED`` and ends ``ACK``, ``REJECTED`` or
``REQUEUED`` -- exactly once: a second settlement raises
:class:`~broker.errors.MessageStateError`, because the broker would close the
channel for an unknown delivery tag. Messages consumed with ``no_ack`` were
settled by the broker on delivery; acking them is a harmless no-op (as in
kombu), and they report ``acknowledged`` from the start.

Settling a message sends one frame on its channel, which the connection sends
whole: ``ack()``, ``reject()`` and ``requeue()`` work from any thread (a worker
that processed the message, say), also while another thread uses the channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import MessageStateError
from broker.instrumentation import hooks as instrumentation
from broker.messaging.serialization import COMPRESSION_HEADER, DEFAULT_ACCEPT, decompress, loads

if TYPE_CHECKING:
    from transports.base import Channel, RawMessage

__all__ = ["ACK", "RECEIVED", "REJECTED", "REQUEUED", "Message", "Received"]

RECEIVED = "RECEIVED"
ACK = "ACK"
REJECTED = "REJECTED"
REQUEUED = "REQUEUED"

_NOTHING: Any = object()
_PAST = {ACK: "acknowledged", REJECTED: "rejected", REQUEUED: "requeued"}


class Received:
    """What was received: the body, properties and settlement state of one delivery.

    The half of a message that needs no channel, shared by :class:`Message`
    and the asyncio :class:`broker.aio.Message`; each adds the settling
    (``ack``, ``reject``, ``requeue``) on its own kind of channel.

    Attributes:
        raw: the transport's message.
        accept: content types :attr:`payload` may decode.
        no_ack: the broker settled it on delivery.
    """

    # Only what every delivery needs is stored; the rest is read from ``raw``
    # when asked for (a consumer loop creates one of these per message).
    __slots__ = ("_body", "_payload", "_state", "accept", "no_ack", "raw")

    def __init__(
        self, raw: RawMessage, accept: frozenset[str] = DEFAULT_ACCEPT, no_ack: bool = False
    ) -> None:
        self.raw = raw
        self.accept = accept
        self.no_ack = no_ack
        self._body: Any = _NOTHING
        self._payload: Any = _NOTHING
        self._state = ACK if no_ack else RECEIVED

    # -- what was received ---------------------------------------------------------

    @property
    def properties(self) -> dict[str, Any]:
        """AMQP basic properties by py-amqp name."""
        return self.raw.properties

    @property
    def delivery_info(self) -> dict[str, Any]:
        """``exchange``, ``routing_key``, ``redelivered``, ``consumer_tag`` ..."""
        return self.raw.delivery_info

    @property
    def delivery_tag(self) -> int:
        """The channel's number for this delivery."""
        return self.raw.delivery_tag

    @property
    def content_type(self) -> str | None:
        """As sent; ``None`` when absent."""
        value: str | None = self.raw.properties.get("content_type")
        return value

    @property
    def content_encoding(self) -> str | None:
        """As sent; ``None`` when absent."""
        value: str | None = self.raw.properties.get("content_encoding")
        return value

    @property
    def headers(self) -> dict[str, Any]:
        """The application headers (an empty dict when none were sent)."""
        props = self.raw.properties
        headers: dict[str, Any] | None = props.get("application_headers")
        if headers is None:
            headers = props["application_headers"] = {}
        return headers

    @property
    def delivery_count(self) -> int | None:
        """Earlier deliveries of this message, as a quorum queue counts them.

        RabbitMQ's quorum queues send it as the ``x-delivery-count`` header
        (0 on the first delivery, one more after each return to the queue);
        ``None`` where the broker does not count (classic queues, other
        transports): then only ``delivery_info['redelivered']`` tells.
        """
        headers = self.raw.properties.get("application_headers")
        count = headers.get("x-delivery-count") if headers else None
        return count if isinstance(count, int) else None

    # -- content ----------------------------------------------------------------

    @property
    def body(self) -> bytes:
        """The body as bytes, decompressed when a ``compression`` header says so."""
        body = self._body
        if body is _NOTHING:
            body = self.raw.body
            headers = self.raw.properties.get("application_headers")
            method = headers.get(COMPRESSION_HEADER) if headers else None
            if method:
                body = decompress(body, method)
            self._body = body
        result: bytes = body
        return result

    def decode(self) -> Any:
        """Decode the body per its content type (honouring :attr:`accept`).

        See :meth:`broker.messaging.serialization.Registry.loads`: content no
        registered serializer decodes stays bytes, text is decoded in its
        ``content_encoding``, an empty body keeps its kind.

        Raises:
            ContentDisallowed: the content type has a registered decoder and
                is not accepted.
            SerializationError: the body does not decode.
        """
        props = self.raw.properties
        return loads(
            self.body, props.get("content_type"), props.get("content_encoding"), self.accept
        )

    @property
    def payload(self) -> Any:
        """The decoded body, decoded on first access and cached."""
        payload = self._payload
        if payload is _NOTHING:
            payload = self._payload = self.decode()
        return payload

    # -- state ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``RECEIVED``, ``ACK``, ``REJECTED`` or ``REQUEUED``."""
        return self._state

    @property
    def acknowledged(self) -> bool:
        """True once the message was acked, rejected or requeued (or consumed no_ack)."""
        return self._state != RECEIVED

    def settle(self, new_state: str) -> bool:
        """Move to ``new_state`` (``ACK``, ``REJECTED`` or ``REQUEUED``) before telling the broker.

        Returns False for a message consumed with ``no_ack`` (the broker
        settled it: nothing to send).

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self.no_ack:
            return False  # the broker settled it on delivery
        if self._state != RECEIVED:
            raise MessageStateError(
                f"message {self.delivery_tag} was already {_PAST[self._state]}: "
                f"a message is acked, rejected or requeued once"
            )
        self._state = new_state
        return True

    def unsettle(self) -> None:
        """Back to ``RECEIVED``: telling the broker failed."""
        self._state = RECEIVED


class Message(Received):
    """A message delivered by a consumer or fetched with ``Queue.get()``.

    Attributes:
        raw: the transport's message.
        channel: the channel it arrived on (acks go back through it).
        accept: content types :attr:`payload` may decode.
        no_ack: the broker settled it on delivery.
    """

    __slots__ = ("channel",)

    def __init__(
        self,
        raw: RawMessage,
        channel: Channel,
        accept: frozenset[str] = DEFAULT_ACCEPT,
        no_ack: bool = False,
    ) -> None:
        # Received.__init__, inlined: a consumer makes one of these per delivery.
        self.raw = raw
        self.accept = accept
        self.no_ack = no_ack
        self._body = _NOTHING
        self._payload = _NOTHING
        self._state = ACK if no_ack else RECEIVED
        self.channel = channel

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge the message (with ``multiple``, every earlier one on the channel too).

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        # settle(ACK), inlined: acking is what nearly every message ends with.
        if self.no_ack:
            return
        if self._state != RECEIVED:
            self.settle(ACK)  # raises MessageStateError
        self._state = ACK
        try:
            self.channel.basic_ack(self.raw.delivery_tag, multiple)
        except BaseException:
            self._state = RECEIVED
            raise
        if instrumentation.active is not None:
            instrumentation.active.settled(self.channel.owner, self.raw, "ack")

    def reject(self, requeue: bool = False) -> None:
        """Reject the message; the broker drops it (or dead-letters it) unless ``requeue``.

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self.settle(REQUEUED if requeue else REJECTED):
            try:
                self.channel.basic_reject(self.delivery_tag, requeue)
            except BaseException:
                self._state = RECEIVED
                raise
            if instrumentation.active is not None:
                operation = "requeue" if requeue else "reject"
                instrumentation.active.settled(self.channel.owner, self.raw, operation)

    def requeue(self) -> None:
        """Give the message back to its queue for redelivery.

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        self.reject(requeue=True)

    def __repr__(self) -> str:
        size = len(self.raw.body) if self.raw.body is not None else 0
        return (
            f"<Message tag={self.delivery_tag} state={self._state} "
            f"content_type={self.content_type!r} size={size}>"
        )
