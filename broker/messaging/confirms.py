"""Publisher confirms: counting delivery tags, collecting acks, nacks and returns.

A channel in confirm mode (``confirm_select``) numbers every publish 1, 2,
3, ... and the broker answers each with ``basic.ack`` or ``basic.nack``
(``multiple=True`` settles every tag up to the one given). A
:class:`ConfirmTracker` does that counting on our side, so that a waiter knows
which publishes are still outstanding without asking the broker anything.

* Per-message confirms publish, then wait for that one tag
  (:meth:`ConfirmTracker.wait`), reading the channel's own events with the
  time left (``Connection.wait_confirms``): threads sharing a connection each
  get their own confirms.
* A :class:`ConfirmBatch` (``with producer.confirms() as batch:``) keeps many
  publishes in flight and waits once, at exit. The batch holds the channel's
  frames meanwhile (``buffered_writes()``) and they leave in large socket
  writes: when enough have gathered, whenever the connection is read
  (waiting for confirms), and when the batch ends, also by an exception. A
  channel error (say, a missing exchange) is then noticed when the batch next
  reads, not by the publish that follows it.

The channel is a :class:`transports.base.ConfirmingChannel`. Where it
``confirms_synchronously`` (``memory://``, ``redis://``) a publish is confirmed
when ``basic_publish`` returns (and an unroutable ``mandatory`` message is
handed back before it returns), so nothing is ever outstanding and there is
nothing to hold back.

Returned (unroutable ``mandatory``) messages arrive before the ack of the same
publish. With one publish in flight they belong to it; in a batch they are
matched by ``message_id`` when the publisher gave one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from broker.errors import (
    BrokerError,
    ConfigurationError,
    ConfirmTimeout,
    MessageNacked,
    MessageUnroutable,
)
from broker.instrumentation import hooks as instrumentation
from broker.timeouts import check_seconds

if TYPE_CHECKING:
    from transports.base import ConfirmingChannel, RawMessage, WriteHold

__all__ = [
    "DEFAULT_CONFIRM_TIMEOUT",
    "DEFAULT_MAX_IN_FLIGHT",
    "BatchOutcome",
    "BatchingProducer",
    "ConfirmBatch",
    "ConfirmLedger",
    "ConfirmTracker",
    "PublishRecord",
    "Returned",
]

#: Seconds a per-message confirm (and, by default, a batch) may take.
DEFAULT_CONFIRM_TIMEOUT = 30.0
#: A batch waits for confirms when this many publishes are outstanding.
DEFAULT_MAX_IN_FLIGHT = 5000

Drain = Callable[[float], None]


class Returned(NamedTuple):
    """A ``mandatory`` message the broker handed back (no queue took it)."""

    reply_code: int
    reply_text: str
    exchange: str
    routing_key: str
    message: RawMessage

    @property
    def message_id(self) -> Any:
        """The returned message's ``message_id`` property, if it had one."""
        return self.message.properties.get("message_id")

    def error(self) -> MessageUnroutable:
        """The exception describing this return."""
        return MessageUnroutable(
            f"message to exchange {self.exchange!r} with routing key {self.routing_key!r} "
            f"was returned: {self.reply_code} {self.reply_text}"
        )


class PublishRecord(NamedTuple):
    """One publish of a batch: its position, delivery tag and ``message_id``."""

    seq: int
    delivery_tag: int
    message_id: Any


class ConfirmLedger:
    """The pure half of confirm bookkeeping: delivery tags, acks, nacks and returns.

    No I/O: it counts what was published and settles tags as the broker's
    ``basic.ack``/``basic.nack`` arrive (:meth:`on_ack`, :meth:`on_nack`:
    it is a :class:`~transports.base.ConfirmListener`). :class:`ConfirmTracker`
    adds a synchronous channel to it; the asyncio producer
    (:mod:`broker.aio.confirms`) an asyncio one.

    Attributes:
        synchronous: the channel confirms when the publish returns (nothing
            is ever pending).
        last_tag: the delivery tag of the last publish.
        pending: tags published and not settled yet (values: the waiter's
            data, if any).
        nacked: tags the broker nacked and nobody collected yet.
        returns: returned ``mandatory`` messages nobody collected yet.
        broken: a publish failed midway, so the count is unreliable.
    """

    def __init__(self, synchronous: bool) -> None:
        self.synchronous = synchronous
        self.last_tag = 0
        self.pending: dict[int, Any] = {}
        self.nacked: set[int] = set()
        self.returns: list[Returned] = []
        self.broken = False
        self._floor = 1  # every tag below it is settled

    def is_pending(self, tag: int) -> bool:
        """Whether ``tag`` is still waiting for its ack or nack."""
        return tag in self.pending

    # -- listeners (run while the connection is being read) ---------------------

    def _settle(self, tag: int, multiple: bool, nack: bool) -> None:
        pending = self.pending
        if multiple:
            for t in range(self._floor, tag + 1):
                if pending.pop(t, _MISSING) is not _MISSING and nack:
                    self.nacked.add(t)
            if tag >= self._floor:
                self._floor = tag + 1
        else:
            if pending.pop(tag, _MISSING) is not _MISSING and nack:
                self.nacked.add(tag)
            if tag == self._floor:
                self._floor = tag + 1

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        """The broker acked ``delivery_tag`` (and, with ``multiple``, every tag below)."""
        self._settle(delivery_tag, multiple, False)

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        """The broker nacked ``delivery_tag`` (and, with ``multiple``, every tag below)."""
        self._settle(delivery_tag, multiple, True)

    def on_return(
        self, reply_code: int, reply_text: str, exchange: str, routing_key: str, message: RawMessage
    ) -> None:
        """A :data:`~transports.base.ReturnCallback`: note a returned ``mandatory`` message."""
        self.returns.append(Returned(reply_code, reply_text, exchange, routing_key, message))

    def take_outcome(self, tag: int) -> MessageNacked | Returned | None:
        """What became of the settled publish ``tag``: a nack error, its return, or ``None``.

        Collects what it reports: the nack, and every return noted so far (a
        return is reported by its last one).
        """
        if tag in self.nacked:
            self.nacked.discard(tag)
            self.returns.clear()
            return MessageNacked(f"the broker nacked message {tag} ({self!r})")
        if self.returns:
            returned = self.returns[-1]
            self.returns.clear()
            return returned
        return None


class ConfirmTracker(ConfirmLedger):
    """Confirm bookkeeping for one synchronous channel in confirm mode.

    It is the channel's :class:`~transports.base.ConfirmListener` (so
    ``channel.confirm_listener`` finds it again) and takes the channel's
    returned messages, until :meth:`detach`.

    Args:
        channel: the channel; put in confirm mode here.
    """

    def __init__(self, channel: ConfirmingChannel) -> None:
        super().__init__(channel.confirms_synchronously)
        self.channel = channel
        channel.confirm_select()
        channel.confirm_listener = self
        channel.on_return = self.on_return

    def publish(
        self, msg: Any, exchange: str, routing_key: str, mandatory: bool, track: bool
    ) -> int:
        """Publish ``msg`` and return its delivery tag.

        With ``track`` the tag stays in :attr:`~ConfirmLedger.pending` until settled; without,
        the publish is only counted (nobody waits for it).
        """
        tag = self.last_tag + 1
        if track and not self.synchronous:
            self.pending[tag] = None
        try:
            self.channel.basic_publish(msg, exchange, routing_key, mandatory)
        except ConfigurationError:
            # Refused before anything was sent (see Channel.basic_publish): the count holds.
            self.pending.pop(tag, None)
            raise
        except BaseException:
            # Whether the frame left is unknown: this channel's count is unreliable.
            self.broken = True
            self.pending.pop(tag, None)
            raise
        self.last_tag = tag
        return tag

    # -- waiting ----------------------------------------------------------------

    def wait(self, tag: int, timeout: float, drain: Drain, is_blocked: Callable[[], bool]) -> None:
        """Read the connection until ``tag`` is settled.

        Raises:
            ConfirmTimeout: not settled within ``timeout`` seconds (also when the
                broker blocks the connection meanwhile: that is no reason to
                fail over).
        """
        if tag not in self.pending:
            return
        deadline = time.monotonic() + timeout
        while tag in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout(1, timeout, is_blocked())
            try:
                drain(remaining)
            except TimeoutError:
                if tag in self.pending:
                    raise _timeout(1, timeout, is_blocked()) from None
        if instrumentation.active is not None:
            waited = time.monotonic() - deadline + timeout
            instrumentation.active.confirmed(waited, False, tag in self.nacked)

    def wait_below(self, count: int, deadline: float, drain: Drain) -> bool:
        """Read until at most ``count`` publishes are outstanding; False at ``deadline``."""
        pending = self.pending
        while len(pending) > count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                drain(remaining)
            except TimeoutError:
                return len(pending) <= count
        return True

    def detach(self) -> None:
        """Stop listening on the channel (it is being replaced)."""
        channel = self.channel
        if channel.confirm_listener is self:
            channel.confirm_listener = None
        if channel.on_return == self.on_return:
            channel.on_return = None

    def __repr__(self) -> str:
        return (
            f"<ConfirmTracker chan:{self.channel.channel_id} published={self.last_tag} "
            f"pending={len(self.pending)} nacked={len(self.nacked)}>"
        )


_MISSING: Any = object()


def _timeout(count: int, timeout: float, blocked: bool) -> ConfirmTimeout:
    why = " (the broker is blocking this connection)" if blocked else ""
    what = "1 message" if count == 1 else f"{count} messages"
    return ConfirmTimeout(
        f"no publisher confirm for {what} within {timeout:g} s{why}; "
        f"whether the broker stored them is unknown"
    )


class BatchingProducer(Protocol):
    """What a :class:`ConfirmBatch` needs of the producer whose publishes it pipelines."""

    #: Called as ``on_return(exc, exchange, routing_key, message)`` for each returned
    #: ``mandatory`` message when the batch ends; ``None`` makes the batch raise instead.
    on_return: Callable[..., Any] | None

    @property
    def is_blocked(self) -> bool:
        """Whether the broker blocks the producer's connection (a timeout then says so)."""
        ...

    def enter_batch(self, batch: ConfirmBatch) -> None:
        """Route the producer's publishes through ``batch``."""
        ...

    def leave_batch(self, batch: ConfirmBatch) -> None:
        """Stop routing the producer's publishes through ``batch``."""
        ...

    def drain_confirms(self, timeout: float) -> None:
        """Read the connection for up to ``timeout`` seconds, so that confirms can arrive."""
        ...

    def discard_channel(self) -> None:
        """Publish on a new channel from now on (called when the broker nacked some)."""
        ...


class BatchOutcome:
    """What became of a pipelined batch's publishes: the pure half of a confirms() block.

    A batch is a series of *segments*, one per confirm-mode channel it used
    (a reconnect starts a new one). :meth:`begin_segment` starts one on a
    :class:`ConfirmLedger`, :meth:`note` counts each publish, and
    :meth:`settle_segment` sorts the segment's tags into confirmed, nacked and
    unconfirmed once the waiting is over. :class:`ConfirmBatch` (synchronous)
    and :class:`broker.aio.confirms.ConfirmBatch` add the waiting.

    Attributes:
        published: how many publishes the batch made.
        confirmed: how many the broker acked (after exit).
        nacked: :class:`PublishRecord` of each nacked publish.
        unconfirmed: :class:`PublishRecord` of each publish with an unknown fate.
        returned: :class:`Returned` for each unroutable ``mandatory`` message.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = check_seconds(timeout, "timeout")
        self.published = 0
        self.confirmed = 0
        self.nacked: list[PublishRecord] = []
        self.unconfirmed: list[PublishRecord] = []
        self.returned: list[Returned] = []
        self._first_tag = 0
        self._first_seq = 0
        self._ids: dict[int, Any] = {}  # tag -> message_id, only when one was given

    def begin_segment(self, ledger: ConfirmLedger, first_tag: int) -> None:
        """Publishes from ``first_tag`` on ``ledger`` belong to this batch."""
        self._first_tag = first_tag
        self._first_seq = self.published
        self._ids = {}
        ledger.nacked.clear()
        ledger.returns.clear()

    def note(self, tag: int, message_id: Any) -> None:
        """Count one publish of the current segment."""
        self.published += 1
        if message_id is not None:
            self._ids[tag] = message_id

    def settle_segment(self, ledger: ConfirmLedger) -> None:
        """Sort the current segment's tags by their fate; what is still pending is unknown."""
        first, last = self._first_tag, ledger.last_tag
        for tag in range(first, last + 1):
            record = PublishRecord(self._first_seq + tag - first, tag, self._ids.get(tag))
            if tag in ledger.nacked:
                self.nacked.append(record)
            elif tag in ledger.pending:
                self.unconfirmed.append(record)
                ledger.pending.pop(tag, None)
            else:
                self.confirmed += 1
        ledger.nacked.clear()
        self.returned.extend(ledger.returns)
        ledger.returns.clear()

    def failure(self, returns_handled: bool) -> BrokerError | None:
        """The error for nacked, unconfirmed or (unless handled) returned messages, if any."""
        if self.nacked:
            return MessageNacked(
                f"the broker nacked {len(self.nacked)} of {self.published} messages: "
                f"{_describe(self.nacked)}"
            )
        if self.unconfirmed:
            return ConfirmTimeout(
                f"{len(self.unconfirmed)} of {self.published} messages were not confirmed "
                f"within {self.timeout:g} s or their connection was lost (fate unknown): "
                f"{_describe(self.unconfirmed)}"
            )
        if self.returned and not returns_handled:
            first = self.returned[0]
            return MessageUnroutable(
                f"{len(self.returned)} of {self.published} mandatory messages were returned "
                f"as unroutable (first: exchange {first.exchange!r}, routing key "
                f"{first.routing_key!r}, {first.reply_code} {first.reply_text})"
            )
        return None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} published={self.published} confirmed={self.confirmed} "
            f"nacked={len(self.nacked)} unconfirmed={len(self.unconfirmed)} "
            f"returned={len(self.returned)}>"
        )


class ConfirmBatch(BatchOutcome):
    """Pipelined confirms: ``with producer.confirms(timeout=30) as batch: ...``.

    Publishes inside the block do not wait; leaving the block waits (at most
    ``timeout`` seconds from entry) until every one is confirmed. Then, if any
    was nacked, the producer moves to a new channel
    (:meth:`BatchingProducer.discard_channel`) and
    :class:`~broker.errors.MessageNacked` is raised; if any is
    still unconfirmed (timeout, or its connection was lost),
    :class:`~broker.errors.ConfirmTimeout`; if a ``mandatory`` message came
    back and the producer has no ``on_return``,
    :class:`~broker.errors.MessageUnroutable`. The lists :attr:`~BatchOutcome.nacked`,
    :attr:`~BatchOutcome.unconfirmed` and :attr:`~BatchOutcome.returned` say which.

    The results are the attributes of :class:`BatchOutcome`.
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
        self._held: WriteHold | None = None  # the tracker channel's buffered_writes()

    def __enter__(self) -> ConfirmBatch:
        self._deadline = time.monotonic() + self.timeout
        self.producer.enter_batch(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.producer.leave_batch(self)
        self._close_out(wait=exc_type is None)
        if self.nacked:
            self.producer.discard_channel()
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
        self.raise_for_failures()

    # -- called by the producer -------------------------------------------------

    def use(self, tracker: ConfirmTracker) -> None:
        """Called before each publish: the batch follows the producer's tracker."""
        if tracker is not self._tracker:
            self._switch(tracker, tracker.last_tag + 1)

    def track(self, tracker: ConfirmTracker, tag: int, message_id: Any) -> None:
        """Note one publish made on ``tracker`` with delivery tag ``tag``."""
        self.note(tag, message_id)
        if len(tracker.pending) >= self.max_in_flight:
            drain = self.producer.drain_confirms
            if not tracker.wait_below(self.max_in_flight // 2, self._deadline, drain):
                raise _timeout(len(tracker.pending), self.timeout, self.producer.is_blocked)

    def _switch(self, tracker: ConfirmTracker, tag: int) -> None:
        # A new channel (after a reconnect): what the old one still owed is unknown.
        self._release_writes(quiet=True)
        self._settle_segment()
        self._tracker = tracker
        self.begin_segment(tracker, tag)
        held = tracker.channel.buffered_writes()
        held.start()
        self._held = held

    def _release_writes(self, quiet: bool) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release(quiet=quiet)

    def _close_out(self, wait: bool) -> None:
        tracker = self._tracker
        try:
            # Everything held leaves first, so the wait below can be answered.
            self._release_writes(quiet=not wait)
            if tracker is not None and wait and not tracker.broken:
                tracker.wait_below(0, self._deadline, self.producer.drain_confirms)
        finally:
            self._settle_segment()
            self._tracker = None

    def _settle_segment(self) -> None:
        if self._tracker is not None:
            self.settle_segment(self._tracker)

    def raise_for_failures(self) -> None:
        """Raise for nacked, unconfirmed or (unhandled) returned messages."""
        error = self.failure(self.producer.on_return is not None)
        if error is not None:
            raise error


def _describe(records: list[PublishRecord], limit: int = 10) -> str:
    shown = ", ".join(
        f"#{r.seq}" + (f" (message_id={r.message_id!r})" if r.message_id is not None else "")
        for r in records[:limit]
    )
    more = f" and {len(records) - limit} more" if len(records) > limit else ""
    return shown + more
