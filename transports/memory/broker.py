"""The in-process broker behind ``memory://``: queues, deliveries, channel state.

All broker state is guarded by one lock, :data:`LOCK`, shared by every memory
connection of the process (virtual hosts and exchanges live in
``transports/memory/vhost.py``, one layer up: what this module needs of a
virtual host is the :class:`Host` protocol). Every function and method here
expects the caller to hold it; none of them blocks or calls user code, so the
lock is only ever held briefly.

Deliveries to consumers are decided here, at publish time, the way RabbitMQ
does it: a message goes round-robin to the next consumer with prefetch credit,
is recorded as unacked on that consumer's channel, and is appended to the
``ready`` queue of the consumer's connection (its "socket buffer"), whose
condition is notified. The consumer's own thread picks it up in
``drain_events``.

Errors mirror RabbitMQ's reply codes and texts (``NOT_FOUND - no queue 'x' in
vhost '/'``) so logs read the same on both transports.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from broker.errors import NotFound
from transports import base
from transports._shared.replies import locked_error, not_found, precondition

__all__ = [
    "LOCK",
    "ChannelCore",
    "Consumer",
    "Entry",
    "Host",
    "Queue",
    "Ready",
    "Session",
    "dispatch",
]

#: The one lock for every virtual host; each connection's condition shares it.
LOCK = threading.Lock()

# Fork only while no thread is inside the broker, so a child process never
# inherits the lock held by a thread that does not exist there.
os.register_at_fork(before=LOCK.acquire, after_in_parent=LOCK.release, after_in_child=LOCK.release)


# -- messages, consumers, queues -----------------------------------------------


class Entry:
    """One message stored in one queue. Body and properties are never mutated."""

    __slots__ = ("body", "exchange", "properties", "redelivered", "routing_key", "seq")

    def __init__(
        self, seq: int, body: bytes, properties: dict[str, Any], exchange: str, routing_key: str
    ) -> None:
        self.seq = seq  # position in the queue, so a requeue can restore it
        self.body = body
        self.properties = properties
        self.exchange = exchange
        self.routing_key = routing_key
        self.redelivered = False


class Consumer:
    """A ``basic_consume`` subscription of one channel to one queue.

    ``channel`` and ``receiver`` are the same channel: the broker keeps its
    state through ``channel``, deliveries name it through ``receiver``, the
    :class:`~transports.base.Channel` its user sees (which builds on this
    module, so this module cannot name its class).
    """

    __slots__ = (
        "callback",
        "channel",
        "exclusive",
        "no_ack",
        "on_cancel",
        "queue",
        "receiver",
        "tag",
        "unacked",
    )

    def __init__(
        self,
        tag: str,
        channel: ChannelCore,
        receiver: base.Channel,
        queue: Queue,
        callback: Callable[[Any], None] | None,
        no_ack: bool,
        exclusive: bool,
        on_cancel: Callable[[str], None] | None,
    ) -> None:
        self.tag = tag
        self.channel = channel
        self.receiver = receiver
        self.queue = queue
        self.callback = callback
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.on_cancel = on_cancel
        self.unacked = 0


_new_entry = Entry.__new__

#: A pushed delivery waiting in a connection's ready queue; entry None = cancel notice.
Ready = tuple[Consumer, Entry | None, int, bool]


class Queue:
    """A queue: a deque of entries plus its consumers, served round-robin."""

    __slots__ = (
        "arguments",
        "auto_delete",
        "consumers",
        "deleted",
        "durable",
        "exchanges",
        "messages",
        "name",
        "owner",
        "rr",
        "seq",
    )

    def __init__(
        self,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: Mapping[str, Any],
        owner: Session | None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = dict(arguments)
        self.owner = owner  # the connection of an exclusive queue
        self.messages: deque[Entry] = deque()
        self.consumers: list[Consumer] = []
        self.rr = 0  # index of the consumer to try first
        self.seq = 0
        self.exchanges: set[str] = set()  # names of exchanges it is bound to
        self.deleted = False

    def put(self, body: bytes, properties: dict[str, Any], exchange: str, routing_key: str) -> None:
        self.seq += 1
        # Entry(...), without the cost of a call to __init__.
        entry = _new_entry(Entry)
        entry.seq = self.seq
        entry.body = body
        entry.properties = properties
        entry.exchange = exchange
        entry.routing_key = routing_key
        entry.redelivered = False
        consumers = self.consumers
        if len(consumers) == 1 and not self.messages:
            # The common case, inlined: one consumer, nothing queued before this
            # message; it goes straight to that consumer if it has credit.
            consumer = consumers[0]
            channel = consumer.channel
            if not channel.prefetch_count or _has_credit(consumer):
                channel.next_tag += 1
                tag = channel.next_tag
                if not consumer.no_ack:
                    channel.unacked[tag] = (self, entry, consumer)
                    consumer.unacked += 1
                    channel.pushed += 1
                session = channel.session
                session.ready.append((consumer, entry, tag, False))
                if session.waiting:
                    session.cond.notify()
                if session.wakeup is not None:
                    session.wakeup()
                return
        self.messages.append(entry)
        if consumers:
            dispatch(self)

    def requeue(self, entry: Entry) -> None:
        """Put an entry back where it was, flagged redelivered (dropped if deleted)."""
        if self.deleted:
            return
        entry.redelivered = True
        messages = self.messages
        if not messages or entry.seq < messages[0].seq:
            messages.appendleft(entry)
        elif entry.seq > messages[-1].seq:
            messages.append(entry)
        else:
            messages.insert(bisect.bisect_left(messages, entry.seq, key=_seq_of), entry)

    def __repr__(self) -> str:
        return (
            f"<memory queue {self.name!r} messages={len(self.messages)} "
            f"consumers={len(self.consumers)}>"
        )


def _seq_of(entry: Entry) -> int:
    return entry.seq


def _has_credit(consumer: Consumer) -> bool:
    if consumer.no_ack:
        return True
    channel = consumer.channel
    limit = channel.prefetch_count
    if not limit:
        return True
    used = channel.pushed if channel.prefetch_global else consumer.unacked
    return used < limit


def dispatch(queue: Queue) -> None:
    """Hand ready messages to consumers with credit, round-robin."""
    messages = queue.messages
    consumers = queue.consumers
    while messages and consumers:
        count = len(consumers)
        start = queue.rr % count
        consumer = consumers[start]
        if consumer.channel.prefetch_count and not _has_credit(consumer):
            # The next in turn is full: the first one after it with credit.
            for step in range(1, count):
                consumer = consumers[(start + step) % count]
                if _has_credit(consumer):
                    start += step
                    break
            else:
                return
        queue.rr = start + 1
        entry = messages.popleft()
        channel = consumer.channel
        channel.next_tag += 1
        tag = channel.next_tag
        if not consumer.no_ack:
            channel.unacked[tag] = (queue, entry, consumer)
            consumer.unacked += 1
            channel.pushed += 1
        session = channel.session
        session.ready.append((consumer, entry, tag, entry.redelivered))
        if session.waiting:
            session.cond.notify()
        if session.wakeup is not None:
            session.wakeup()


# -- channels and connections (broker side) ------------------------------------


class Host(Protocol):
    """What channels and sessions need of the virtual host they live in.

    :class:`~transports.memory.vhost.VHost` is the one implementation; it
    builds on this module, so this module names it only through this protocol.
    """

    @property
    def name(self) -> str:
        """The virtual host's name, for error messages."""
        ...

    @property
    def queues(self) -> Mapping[str, Queue]:
        """The live queues by name."""
        ...

    def drop_queue(self, queue: Queue) -> None:
        """Delete a queue: unbind it, cancel its consumers, discard its messages."""
        ...

    def remove_session(self, session: Session) -> None:
        """A connection closed: it no longer lives in this virtual host."""
        ...


#: An unacked delivery: its queue, the entry, and the consumer (None for basic_get).
Unacked = tuple[Queue, Entry, Consumer | None]


class ChannelCore:
    """Broker-side state of a channel: delivery tags, unacked messages, consumers."""

    __slots__ = (
        "_open",
        "channel_id",
        "close_reason",
        "consumers",
        "last_queue",
        "next_tag",
        "prefetch_count",
        "prefetch_global",
        "pushed",
        "session",
        "unacked",
    )

    def __init__(self, session: Session, channel_id: int) -> None:
        self.session = session
        self.channel_id = channel_id
        self._open = True
        self.close_reason: str | None = None
        self.next_tag = 0
        self.unacked: dict[int, Unacked] = {}
        self.pushed = 0  # unacked deliveries made to consumers (not basic_get)
        self.prefetch_count = 0
        self.prefetch_global = False
        self.consumers: dict[str, Consumer] = {}
        self.last_queue = ""  # AMQP: an empty queue name means the last one declared

    def queue_locked(self, name: str) -> Queue:
        """The queue called ``name`` ('' = last declared), if this connection may use it."""
        if not name:
            name = self.last_queue
            if not name:
                raise NotFound("NOT_FOUND - no previously declared queue", reply_code=404)
        host = self.session.vhost
        queue = host.queues.get(name)
        if queue is None:
            raise not_found("queue", name, host.name)
        if queue.owner is not None and queue.owner is not self.session:
            raise locked_error(name, host.name)
        return queue

    def settle_locked(self, tag: int, multiple: bool, requeue: bool | None) -> None:
        """Ack (``requeue=None``), or reject/nack with or without requeue."""
        unacked = self.unacked
        if multiple and not tag:
            tags = list(unacked)  # multiple with tag 0 means "everything outstanding"
        elif multiple:
            tags = []
            for t in unacked:  # tags were inserted in increasing order
                if t > tag:
                    break
                tags.append(t)
            if not tags:
                raise precondition(f"unknown delivery tag {tag}")
        elif tag in unacked:
            tags = [tag]
        else:
            raise precondition(f"unknown delivery tag {tag}")
        records = [unacked.pop(t) for t in tags]
        if requeue:
            records.sort(key=lambda rec: rec[1].seq, reverse=True)
        touched: set[Queue] = set()
        for queue, entry, consumer in records:
            if consumer is not None:
                consumer.unacked -= 1
                self.pushed -= 1
                touched.add(consumer.queue)
            if requeue:
                queue.requeue(entry)
                touched.add(queue)
        if self.prefetch_global and self.prefetch_count:
            touched.update(c.queue for c in self.consumers.values())
        for queue in touched:
            dispatch(queue)

    def credit_returned_locked(self, consumer: Consumer) -> None:
        """A pushed delivery of ``consumer`` was acked under a prefetch limit: dispatch more.

        The caller has already taken it off ``consumer.unacked`` and ``pushed``.
        """
        if self.prefetch_global:
            for other in list(self.consumers.values()):
                dispatch(other.queue)
        elif consumer.queue.messages:
            dispatch(consumer.queue)

    def reclaim_locked(self, consumer: Consumer | None) -> set[Queue]:
        """Take back pushed-but-undispatched deliveries (of one consumer, or all)."""
        ready = self.session.ready
        touched: set[Queue] = set()
        if not ready:
            return touched
        keep: list[Ready] = []
        for item in ready:
            owner, entry, tag, _ = item
            if owner.channel is not self or (consumer is not None and owner is not consumer):
                keep.append(item)
                continue
            if entry is None:
                continue  # a cancel notice for a consumer that is going away anyway
            if not owner.no_ack:
                if self.unacked.pop(tag, None) is None:
                    continue  # already settled by an ack with multiple=True
                owner.unacked -= 1
                self.pushed -= 1
            owner.queue.requeue(entry)
            touched.add(owner.queue)
        ready.clear()
        ready.extend(keep)
        return touched

    def requeue_all_locked(self) -> set[Queue]:
        """Return every unacked message to its queue (channel close, basic_recover)."""
        records = sorted(self.unacked.values(), key=lambda rec: rec[1].seq, reverse=True)
        self.unacked.clear()
        self.pushed = 0
        touched: set[Queue] = set()
        for queue, entry, consumer in records:
            if consumer is not None:
                consumer.unacked = 0
            queue.requeue(entry)
            touched.add(queue)
        return touched

    def cancel_locked(self, consumer: Consumer, notify: bool) -> None:
        """Remove a consumer; undispatched deliveries go back; auto-delete its queue."""
        self.consumers.pop(consumer.tag, None)
        queue = consumer.queue
        if consumer in queue.consumers:
            queue.consumers.remove(consumer)
        self.reclaim_locked(consumer)
        if notify and consumer.on_cancel is not None and self._open:
            self.session.ready.append((consumer, None, 0, False))
            if self.session.waiting:
                self.session.cond.notify()
            if self.session.wakeup is not None:
                self.session.wakeup()
        if queue.auto_delete and not queue.consumers and not queue.deleted:
            self.session.vhost.drop_queue(queue)
        else:
            dispatch(queue)

    def close_locked(self, reason: str | None) -> None:
        """Close: cancel consumers, requeue every unacked message (nothing is lost)."""
        if not self._open:
            return
        self._open = False
        self.close_reason = reason
        consumers = list(self.consumers.values())
        self.consumers.clear()
        # Detach every consumer first, so nothing is re-dispatched to this channel.
        for consumer in consumers:
            consumer.queue.consumers.remove(consumer)
        touched = self.reclaim_locked(None) | self.requeue_all_locked()
        for consumer in consumers:
            queue = consumer.queue
            touched.add(queue)
            if queue.auto_delete and not queue.consumers:
                self.session.vhost.drop_queue(queue)
        for queue in touched:
            dispatch(queue)
        self.session.channels.pop(self.channel_id, None)


class Session:
    """Broker-side state of one connection: its channels, exclusive queues, ready deliveries."""

    __slots__ = ("channels", "cond", "exclusive", "open", "ready", "vhost", "waiting", "wakeup")

    def __init__(self, vhost: Host) -> None:
        self.vhost = vhost
        self.cond = threading.Condition(LOCK)
        self.ready: deque[Ready] = deque()
        self.waiting = 0  # threads blocked in drain_events: notify only when someone listens
        #: Called (lock held, from any thread) whenever ``ready`` grows or the session
        #: closes, for readers that cannot block on ``cond`` (the asyncio connection).
        self.wakeup: Callable[[], None] | None = None
        self.open = True
        self.channels: dict[int, ChannelCore] = {}
        self.exclusive: set[Queue] = set()

    def close_locked(self) -> None:
        if not self.open:
            return
        for channel in list(self.channels.values()):
            channel.close_locked("connection closed")
        for queue in list(self.exclusive):
            self.vhost.drop_queue(queue)
        self.open = False
        self.ready.clear()
        self.vhost.remove_session(self)
        self.cond.notify_all()
        if self.wakeup is not None:
            self.wakeup()

    def kill_locked(self, reason: str) -> None:
        """Mark closed without touching broker state (the broker is being wiped)."""
        self.open = False
        for channel in self.channels.values():
            channel._open = False
            channel.close_reason = reason
        self.channels.clear()
        self.ready.clear()
        self.cond.notify_all()
        if self.wakeup is not None:
            self.wakeup()
