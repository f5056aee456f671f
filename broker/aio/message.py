"""A received message on the asyncio side: the synchronous content, settled with ``await``.

The content and the once-only state machine are the synchronous side's
(:class:`broker.messaging.message.Received`: the body, decompression,
decoding with ``accept``); settling (``await message.ack()``) sends the frame
on the asyncio channel the message arrived on. A second settlement raises
:class:`~broker.errors.MessageStateError`; messages consumed with ``no_ack``
report ``acknowledged`` from the start and acking them does nothing.
"""

from __future__ import annotations

from broker.instrumentation import hooks as instrumentation
from broker.messaging.message import ACK, REJECTED, REQUEUED, Received
from broker.messaging.serialization import DEFAULT_ACCEPT
from transports.base import RawMessage
from transports.base_aio import AsyncChannel

__all__ = ["Message"]


class Message(Received):
    """A message delivered to an asyncio consumer or fetched with ``SimpleQueue.get``.

    Attributes:
        raw: the transport's message.
        channel: the asyncio channel it arrived on (settling goes back through it).
        accept: content types :attr:`payload` may decode.
        no_ack: the broker settled it on delivery.
    """

    __slots__ = ("channel",)

    def __init__(
        self,
        raw: RawMessage,
        channel: AsyncChannel,
        accept: frozenset[str] = DEFAULT_ACCEPT,
        no_ack: bool = False,
    ) -> None:
        super().__init__(raw, accept, no_ack)
        self.channel = channel

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge the message (with ``multiple``, every earlier one on the channel too).

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self.settle(ACK):
            try:
                await self.channel.basic_ack(self.raw.delivery_tag, multiple)
            except BaseException:
                self.unsettle()
                raise
            if instrumentation.active is not None:
                instrumentation.active.settled(self.channel.owner, self.raw, "ack")

    async def reject(self, requeue: bool = False) -> None:
        """Reject the message; the broker drops (or dead-letters) it unless ``requeue``.

        Raises:
            MessageStateError: it was already acked, rejected or requeued.
        """
        if self.settle(REQUEUED if requeue else REJECTED):
            try:
                await self.channel.basic_reject(self.raw.delivery_tag, requeue)
            except BaseException:
                self.unsettle()
                raise
            if instrumentation.active is not None:
                operation = "requeue" if requeue else "reject"
                instrumentation.active.settled(self.channel.owner, self.raw, operation)

    async def requeue(self) -> None:
        """Give the message back to its queue for redelivery."""
        await self.reject(requeue=True)

    def __repr__(self) -> str:
        size = len(self.raw.body) if self.raw.body is not None else 0
        return (
            f"<aio.Message tag={self.delivery_tag} state={self.state} "
            f"content_type={self.content_type!r} size={size}>"
        )
