"""A received message on the asyncio side: content as on the synchronous side, settled with await.

The content is read as on the synchronous side (the ``compression`` header,
then the serialization registry's ``loads`` with ``accept``); settling
(``await message.ack()``) sends the frame on the asyncio channel the message
arrived on. A message is settled exactly once (else
:class:`~broker.errors.MessageStateError`); messages consumed with ``no_ack``
report ``acknowledged`` from the start and acking them does nothing.
"""

from __future__ import annotations

from typing import Any

from broker.errors import MessageStateError
from broker.messaging.message import ACK, RECEIVED, REJECTED, REQUEUED
from broker.messaging.serialization import COMPRESSION_HEADER, DEFAULT_ACCEPT, decompress, loads
from transports.base import RawMessage
from transports.base_aio import AsyncChannel

__all__ = ["Message"]

_NOTHING: Any = object()
_PAST = {ACK: "acknowledged", REJECTED: "rejected", REQUEUED: "requeued"}


class Message:
    """A message delivered to an asyncio consumer or fetched with ``SimpleQueue.get``.

    Attributes:
        raw: the transport's message.
        channel: the asyncio channel it arrived on (settling goes back through it).
        no_ack: the broker settled it on delivery.
    """

    __slots__ = ("_body", "_payload", "_state", "accept", "channel", "no_ack", "raw")

    def __init__(
        self,
        raw: RawMessage,
        channel: AsyncChannel,
        accept: frozenset[str] = DEFAULT_ACCEPT,
        no_ack: bool = False,
    ) -> None:
        self.raw = raw
        self.channel = channel
        self.no_ack = no_ack
        self.accept = accept
        self._body: Any = _NOTHING
        self._payload: Any = _NOTHING
        self._state = ACK if no_ack else RECEIVED

    # -- content (the synchronous Message's) ------------------------------------------

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
    def headers(self) -> dict[str, Any]:
        """The application headers (an empty dict when none were sent)."""
        headers: dict[str, Any] | None = self.raw.properties.get("application_headers")
        return headers if headers is not None else {}

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
    def body(self) -> bytes:
        """The body as bytes, decompressed when a ``compression`` header says so."""
        if self._body is _NOTHING:
            method = self.headers.get(COMPRESSION_HEADER)
            raw: bytes = self.raw.body
            self._body = decompress(raw, method) if method else raw
        body: bytes = self._body
        return body

    def decode(self) -> Any:
        """Decode the body per its content type (honouring :attr:`accept`).

        Raises:
            ContentDisallowed: the content type is not accepted.
            SerializationError: the body does not decode.
        """
        return loads(self.body, self.content_type, self.content_encoding, self.accept)

    @property
    def payload(self) -> Any:
        """The decoded body, decoded on first access and cached."""
        if self._payload is _NOTHING:
            self._payload = self.decode()
        return self._payload

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``RECEIVED``, ``ACK``, ``REJECTED`` or ``REQUEUED``."""
        return self._state

    @property
    def acknowledged(self) -> bool:
        """True once the message was acked, rejected or requeued (or consumed no_ack)."""
        return self._state != RECEIVED

    def _settle(self, new_state: str) -> bool:
        if self.no_ack:
            return False
        if self._state != RECEIVED:
            raise MessageStateError(
                f"message {self.delivery_tag} was already {_PAST[self._state]}: "
                f"a message is acked, rejected or requeued once"
            )
        self._state = new_state
        return True

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge the message (with ``multiple``, every earlier one on the channel too).

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self._settle(ACK):
            try:
                await self.channel.basic_ack(self.raw.delivery_tag, multiple)
            except BaseException:
                self._state = RECEIVED
                raise

    async def reject(self, requeue: bool = False) -> None:
        """Reject the message; the broker drops (or dead-letters) it unless ``requeue``.

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self._settle(REQUEUED if requeue else REJECTED):
            try:
                await self.channel.basic_reject(self.raw.delivery_tag, requeue)
            except BaseException:
                self._state = RECEIVED
                raise

    async def requeue(self) -> None:
        """Give the message back to its queue for redelivery."""
        await self.reject(requeue=True)

    def __repr__(self) -> str:
        size = len(self.raw.body) if self.raw.body is not None else 0
        return (
            f"<aio.Message tag={self.delivery_tag} state={self._state} "
            f"content_type={self.content_type!r} size={size}>"
        )
