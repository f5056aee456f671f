"""Publisher confirms on asyncio channels, per message and pipelined.

The bookkeeping is the synchronous side's: a :class:`ConfirmTracker` is a
:class:`~broker.messaging.confirms.ConfirmLedger` (tags, acks, nacks,
returns) on an asyncio channel, and a :class:`ConfirmBatch` is a
:class:`~broker.messaging.confirms.BatchOutcome` (what became of each
publish of a ``confirms()`` block). What is added here is waiting: a
per-message confirm waits for its tag, a batch waits once when it ends (and
when ``max_in_flight`` publishes are outstanding), in both cases by awaiting
the connection's next events with the time left, so a lost link ends the
wait at once rather than at the timeout.

Pipelining needs no write buffering here: the asyncio transport sends
everything written during one turn of the loop in one ``transport.write``.

After a nack the producer leaves its channel (RabbitMQ 3.10 keeps nacking
every later publish of a channel whose first publish to a quorum queue fell
in a leader election): the tracker is *retired* -- nothing more is published
on it -- and its channel is closed once no task waits for a confirm on it
any more, so the other tasks' publishes still learn their fate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

from broker.errors import BrokerError, ConfirmTimeout, RecoverableChannelError
from broker.instrumentation import hooks as instrumentation
from broker.messaging.confirms import (
    DEFAULT_CONFIRM_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    BatchOutcome,
    ConfirmLedger,
)
from transports.base_aio import AsyncConfirmingChannel

__all__ = ["BatchingProducer", "ConfirmBatch", "ConfirmTracker"]

#: ``drain(timeout)``: wait for the connection's next event.
Drain = Callable[[float], Awaitable[None]]


def _timeout(count: int, timeout: float, blocked: bool) -> ConfirmTimeout:
    why = " (the broker is blocking this connection)" if blocked else ""
    what = "1 message" if count == 1 else f"{count} messages"
    return ConfirmTimeout(
        f"no publisher confirm for {what} within {timeout:g} s{why}; "
        f"whether the broker stored them is unknown"
    )


class ConfirmTracker(ConfirmLedger):
    """Confirm bookkeeping for one asyncio channel in confirm mode.

    Make one with :meth:`attach` (it puts the channel in confirm mode and
    becomes its confirm listener and return handler).

    Attributes:
        retired: nothing more is published on the channel; it closes once no
            task waits on it (see :meth:`retire`).
    """

    def __init__(self, channel: AsyncConfirmingChannel) -> None:
        super().__init__(channel.confirms_synchronously)
        self.channel = channel
        self.retired = False
        self._waiters = 0  # tasks inside wait() or wait_below()

    @classmethod
    async def attach(cls, channel: AsyncConfirmingChannel) -> ConfirmTracker:
        """Put ``channel`` in confirm mode and listen to it."""
        tracker = cls(channel)
        await channel.confirm_select()
        channel.confirm_listener = tracker
        channel.on_return = tracker.on_return
        return tracker

    async def publish(
        self, msg: Any, exchange: str, routing_key: str, mandatory: bool, track: bool
    ) -> int:
        """Publish ``msg`` and return its delivery tag (tracked in ``pending`` if ``track``).

        The tag is counted when the publish returns. An asyncio channel
        raises (or is cancelled) only before it writes anything, and writes a
        publish's frames whole, so a failed publish is never counted and the
        count never goes wrong.
        """
        await self.channel.basic_publish(msg, exchange, routing_key, mandatory)
        tag = self.last_tag = self.last_tag + 1
        if track and not self.synchronous:
            self.pending[tag] = None
        return tag

    async def wait(
        self, tag: int, timeout: float, drain: Drain, is_blocked: Callable[[], bool]
    ) -> None:
        """Wait until ``tag`` is settled.

        Raises:
            ConfirmTimeout: not settled within ``timeout`` seconds.
            broker.errors.RecoverableConnectionError: the link went down meanwhile.
        """
        if tag not in self.pending:
            return
        deadline = time.monotonic() + timeout
        self._waiters += 1
        try:
            while tag in self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout(1, timeout, is_blocked())
                try:
                    await drain(remaining)
                except TimeoutError:
                    if tag in self.pending:
                        raise _timeout(1, timeout, is_blocked()) from None
                self._check_open()
        finally:
            await self._stop_waiting()
        if instrumentation.active is not None:
            waited = time.monotonic() - deadline + timeout
            instrumentation.active.confirmed(waited, False, tag in self.nacked)

    async def wait_below(self, count: int, deadline: float, drain: Drain) -> bool:
        """Wait until at most ``count`` publishes are outstanding; False at ``deadline``."""
        pending = self.pending
        if len(pending) <= count:
            return True
        self._waiters += 1
        try:
            while len(pending) > count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await drain(remaining)
                except TimeoutError:
                    return len(pending) <= count
                self._check_open()
        finally:
            await self._stop_waiting()
        return True

    async def _stop_waiting(self) -> None:
        self._waiters -= 1
        if self.retired and not self._waiters:
            await self._close()

    async def retire(self) -> None:
        """Publish nothing more on this channel; close it once no task waits on it.

        The producer calls this after a nack on a channel of its own. Tasks
        still waiting for confirms on it keep listening until they are done;
        the last one closes the channel.
        """
        self.retired = True
        if not self._waiters:
            await self._close()

    async def _close(self) -> None:
        self.detach()
        with contextlib.suppress(BrokerError):  # already closed, or its link is gone
            await self.channel.close()

    def _check_open(self) -> None:
        # The broker closed the channel (say, a publish to a missing exchange):
        # no confirm will come for what is pending.
        if self.pending and not self.channel.is_open:
            self.broken = True
            raise RecoverableChannelError(
                f"channel {self.channel.channel_id} was closed by the broker with "
                f"{len(self.pending)} publish(es) unconfirmed; whether it stored them is unknown"
            )

    def detach(self) -> None:
        """Stop listening on the channel (it is being replaced)."""
        channel = self.channel
        if channel.confirm_listener is self:
            channel.confirm_listener = None
        if channel.on_return == self.on_return:
            channel.on_return = None

    def __repr__(self) -> str:
        retired = " retired" if self.retired else ""
        return (
            f"<aio.ConfirmTracker chan:{self.channel.channel_id} published={self.last_tag} "
            f"pending={len(self.pending)} nacked={len(self.nacked)}{retired}>"
        )


class BatchingProducer(Protocol):
    """What a :class:`ConfirmBatch` needs of the producer whose publishes it pipelines."""

    on_return: Callable[..., Any] | None

    @property
    def is_blocked(self) -> bool: ...

    async def enter_batch(self, batch: ConfirmBatch) -> None: ...

    def leave_batch(self, batch: ConfirmBatch) -> None: ...

    async def drain_confirms(self, timeout: float) -> None: ...

    async def discard_channel(self, tracker: ConfirmTracker | None = None) -> None:
        """Publish on a new channel from now on (called when the broker nacked some)."""
        ...


class ConfirmBatch(BatchOutcome):
    """Pipelined confirms: ``async with producer.confirms(timeout=30) as batch: ...``.

    Publishes inside the block do not wait for their confirm; leaving the
    block waits (at most ``timeout`` seconds from entry) until every one is
    settled. If any was nacked, the producer moves to a new channel
    (:meth:`BatchingProducer.discard_channel`). Then it raises like the synchronous
    :class:`~broker.messaging.confirms.ConfirmBatch`: ``MessageNacked``,
    ``ConfirmTimeout`` (unconfirmed: timed out or the link was lost), or
    ``MessageUnroutable`` (returned, and the producer has no ``on_return``).
    The results are the attributes of
    :class:`~broker.messaging.confirms.BatchOutcome`.
    """

    def __init__(
        self,
        producer: BatchingProducer,
        timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(timeout)
        self.producer = producer
        self.max_in_flight = max(1, max_in_flight)
        self._deadline = 0.0
        self._tracker: ConfirmTracker | None = None

    async def __aenter__(self) -> ConfirmBatch:
        self._deadline = time.monotonic() + self.timeout
        await self.producer.enter_batch(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.producer.leave_batch(self)
        tracker = self._tracker
        try:
            if exc_type is None and tracker is not None and not tracker.broken:
                await tracker.wait_below(0, self._deadline, self.producer.drain_confirms)
        finally:
            self._settle()
        if self.nacked and tracker is not None:
            await self.producer.discard_channel(tracker)
        if exc_type is not None:
            return
        if instrumentation.active is not None:
            took = time.monotonic() - self._deadline + self.timeout
            instrumentation.active.confirmed(took, True, bool(self.nacked))
        on_return = self.producer.on_return
        if on_return is not None:
            for returned in self.returned:
                on_return(returned.error(), returned.exchange, returned.routing_key,
                          returned.message)  # fmt: skip
        error = self.failure(on_return is not None)
        if error is not None:
            raise error

    def use(self, tracker: ConfirmTracker) -> None:
        """Called before each publish: the batch follows the producer's tracker."""
        if tracker is not self._tracker:
            # A new channel (after a reconnect): what the old one still owed is unknown.
            self._settle()
            self._tracker = tracker
            self.begin_segment(tracker, tracker.last_tag + 1)

    async def track(self, tracker: ConfirmTracker, tag: int, message_id: Any) -> None:
        """Note one publish; wait when ``max_in_flight`` publishes are outstanding."""
        self.note(tag, message_id)
        if len(tracker.pending) >= self.max_in_flight:
            drain = self.producer.drain_confirms
            if not await tracker.wait_below(self.max_in_flight // 2, self._deadline, drain):
                raise _timeout(len(tracker.pending), self.timeout, self.producer.is_blocked)

    def _settle(self) -> None:
        if self._tracker is not None:
            self.settle_segment(self._tracker)
            self._tracker = None
