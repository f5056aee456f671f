"""The consumers of one asyncio AMQP channel: :class:`Subscriptions`.

Each ``basic.consume`` registers its callback under its tag; deliveries are
handed to it as they are read. A consumer being cancelled by us keeps its tag
without a callback until ``basic.cancel-ok``, and deliveries sent before the
broker saw the cancel are given back (the channel rejects them with requeue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from transports.base import MessageCallback

__all__ = ["Subscriptions"]


class _Subscription(NamedTuple):
    callback: MessageCallback | None
    on_cancel: Callable[[str], None] | None
    no_ack: bool


class Subscriptions:
    """Consumer tags of one channel and what to do with their deliveries."""

    __slots__ = ("_by_tag",)

    def __init__(self) -> None:
        self._by_tag: dict[str, _Subscription] = {}

    def __len__(self) -> int:
        return len(self._by_tag)

    def add(
        self,
        tag: str,
        callback: MessageCallback | None,
        on_cancel: Callable[[str], None] | None,
        no_ack: bool,
    ) -> None:
        """Deliveries to ``tag`` go to ``callback`` from now on."""
        self._by_tag[tag] = _Subscription(callback, on_cancel, no_ack)

    def stop(self, tag: str) -> None:
        """A cancel is on its way: later deliveries to ``tag`` are given back."""
        sub = self._by_tag.get(tag)
        if sub is not None:
            self._by_tag[tag] = sub._replace(callback=None)

    def remove(self, tag: str) -> None:
        """Forget ``tag`` (cancelled, or its consume failed)."""
        self._by_tag.pop(tag, None)

    def clear(self) -> None:
        """Forget every consumer (the channel closed)."""
        self._by_tag.clear()

    def deliver(self, consumer_tag: str, msg: Any) -> bool:
        """Hand ``msg`` to its consumer's callback; False when it must be given back.

        A callback that raises is reported to the loop's exception handler:
        the channel keeps reading.
        """
        sub = self._by_tag.get(consumer_tag)
        if sub is None or sub.callback is None:
            return sub is not None and sub.no_ack  # no_ack: the broker settled it already
        try:
            sub.callback(msg)
        except Exception as exc:
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"consumer callback of {consumer_tag!r} failed", "exception": exc}
            )
        return True

    def cancelled_by_broker(self, consumer_tag: str) -> None:
        """The broker cancelled ``consumer_tag`` (its queue was deleted): tell its consumer."""
        sub = self._by_tag.pop(consumer_tag, None)
        if sub is not None and sub.on_cancel is not None:
            sub.on_cancel(consumer_tag)

    def __repr__(self) -> str:
        return f"<Subscriptions {sorted(self._by_tag)}>"
