"""One AMQP connection shared by threads: who reads the socket, and who gets what was read.

Threads may share a connection, each using channels of its own. py-amqp has
one socket and one frame parser, so one thread at a time reads: the
*leader*. A thread that needs an event (a reply, a confirm, a delivery)
becomes the leader if nobody reads, and otherwise sleeps until the leader
hands it something or steps down (leader/follower). The leader puts every
method it reads in the inbox of the method's channel and wakes the thread
entitled to it; that thread dispatches the method itself. So callbacks,
confirms and replies run on the thread that uses the channel, never on
whichever thread happened to read the frame, and a reply wakes exactly the
thread waiting for it. With one thread nothing changes: it is always the
leader and takes its own events.

Who may take a channel's events (a *scope* says what a thread waits for):

* a thread waiting on the channel (:meth:`Demux.claim`: a synchronous reply,
  its confirms): it alone, for as long as it waits;
* otherwise a thread draining the connection (scope :data:`DRAIN`) takes
  the events of the channels it used last; and of a channel that consumes,
  also when the thread that used it last does not drain this connection
  (consumers set up on one thread and drained on another, or revived by a
  reconnect on a thread that does not drain); that channel then counts as
  the draining thread's, so its callbacks stay on one thread;
* connection-level methods (channel 0: ``connection.blocked``, ``close``)
  are dispatched by the leader as it reads them; a thread waiting for one
  (scope :data:`CONNECTION`, e.g. the close handshake) is woken.

Events of a channel that nobody may take yet wait in its inbox until the
thread using the channel comes back (its next publish looks, as py-amqp's
does before each publish).

A failure of the leader's read (:meth:`Demux.fail`, also called when the
connection is torn down) wakes every waiting thread; each raises
:class:`ConnectionLost`, naming the original error, from its own call.

Everything is bounded: a follower re-checks at least every
:data:`FOLLOWER_SLICE` seconds, so even a lost wake-up costs latency, never
a hang, and every wait ends at its deadline.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "CONNECTION",
    "DRAIN",
    "FOLLOWER_SLICE",
    "ConnectionLost",
    "Demux",
    "Item",
]

#: Scope of a thread draining the connection (``drain_events``).
DRAIN = -1
#: Scope of a thread waiting for a connection-level method (channel 0).
CONNECTION = 0
#: Longest sleep of a follower between two looks at its inbox.
FOLLOWER_SLICE = 1.0

#: A method read for a channel: ``(method_sig, payload, content)``, as py-amqp dispatches it.
Item = tuple[Any, Any, Any]
#: ``read(timeout)``: read and route one frame; ``TimeoutError`` when none came in time.
Read = Callable[[float | None], None]


class ConnectionLost(ConnectionError):
    """The connection failed while this thread waited on it; ``original`` is the reader's error.

    Each waiting thread raises its own instance (the transport translates
    it like ``original``). An ``OSError``, like every socket failure the
    transport translates.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"connection lost: {original}")
        self.original = original


class _Waiter:
    """A sleeping thread: woken when it may have something to take, or may lead.

    One sleep's worth: a fresh waiter per sleep. It sleeps on a bare lock,
    held from the start, that :meth:`wake` releases: a hand-over costs two C
    calls, where a ``threading.Event`` runs a condition variable in Python on
    both sides (and every confirm a thread waits for is such a hand-over).
    """

    __slots__ = ("_gate", "ident", "scope", "signaled")

    def __init__(self, ident: int, scope: int) -> None:
        self.ident = ident
        self.scope = scope
        self.signaled = False
        self._gate = threading.Lock()  # looked up per call: gevent patches it
        self._gate.acquire()

    def wake(self) -> None:
        """Let the sleeper go (from any thread; again is harmless)."""
        try:  # noqa: SIM105 (suppress() costs a context manager per hand-over)
            self._gate.release()
        except RuntimeError:  # already woken
            pass

    def sleep(self, timeout: float) -> None:
        """Sleep until :meth:`wake`, at most ``timeout`` seconds (once per waiter)."""
        self._gate.acquire(True, timeout)


class _Slot:
    """One channel's inbox and who may take from it."""

    __slots__ = ("channel_id", "claimed", "inbox", "user", "waiter")

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self.inbox: collections.deque[Item] = collections.deque()
        self.user: int | None = None  # the thread that used the channel last
        self.claimed: int | None = None  # a thread waiting on this channel
        self.waiter: _Waiter | None = None  # that thread while it sleeps


class Demux:
    """Routes one connection's inbound methods to the threads entitled to them.

    Args:
        is_consuming: whether a channel has consumers (its deliveries may be
            taken by any thread draining the connection, see the module docstring).
    """

    def __init__(self, is_consuming: Callable[[int], bool]) -> None:
        self._is_consuming = is_consuming
        self._mutex = threading.Lock()
        self._slots: dict[int, _Slot] = {}
        self._pending: dict[int, _Slot] = {}  # slots with a non-empty inbox, oldest first
        # Held by the thread reading (the leader). A thread that registers as a
        # sleeper looks at it again before sleeping, and a leader stepping down
        # looks for sleepers after letting go: one of the two always sees the other.
        self._lead = threading.Lock()
        self._sleepers: dict[int, _Waiter] = {}
        self._drainers: dict[int, threading.Thread] = {}
        self._connection_events = 0
        self._failure: BaseException | None = None

    # -- channels ----------------------------------------------------------------

    def open_slot(self, channel_id: int) -> None:
        """A channel was opened under ``channel_id``; whatever an older one left is gone."""
        with self._mutex:
            self._slots[channel_id] = _Slot(channel_id)
            self._pending.pop(channel_id, None)

    def close_slot(self, channel_id: int) -> None:
        """The channel was released: its unread events are dropped."""
        with self._mutex:
            self._slots.pop(channel_id, None)
            self._pending.pop(channel_id, None)

    def used_by(self, channel_id: int, ident: int) -> None:
        """Thread ``ident`` made a call on the channel (its events follow that thread)."""
        slot = self._slots.get(channel_id)
        if slot is not None and slot.user != ident:
            slot.user = ident

    def claim(self, channel_id: int) -> None:
        """The calling thread waits on the channel: its events are for it until :meth:`unclaim`."""
        slot = self._slots.get(channel_id)
        if slot is not None:
            slot.claimed = threading.get_ident()

    def unclaim(self, channel_id: int) -> None:
        """The wait on the channel ended; events left in its inbox go to a draining thread."""
        wake = None
        with self._mutex:
            slot = self._slots.get(channel_id)
            if slot is None:
                return
            slot.claimed = None
            if slot.inbox:
                wake = self._drainer_for_locked(slot)
        if wake is not None:
            wake.wake()

    def has_events(self, channel_id: int) -> bool:
        """Whether the channel's inbox holds something (no lock: a hint)."""
        slot = self._slots.get(channel_id)
        return slot is not None and bool(slot.inbox)

    # -- the leader's side ---------------------------------------------------------

    @property
    def is_reading(self) -> bool:
        """Whether a thread reads the socket now (no lock: a hint)."""
        return self._lead.locked()

    def route(self, channel_id: int, item: Item) -> None:
        """The leader read a method of channel ``channel_id``: queue it, wake who may take it."""
        with self._mutex:
            slot = self._slots.get(channel_id)
            if slot is None:
                return  # a channel already released: like py-amqp, nothing waits for it
            slot.inbox.append(item)
            if channel_id not in self._pending:
                self._pending[channel_id] = slot
            wake = slot.waiter if slot.claimed is not None else self._drainer_for_locked(slot)
            if wake is not None and wake.signaled:
                wake = None
            elif wake is not None:
                wake.signaled = True
        if wake is not None:
            wake.wake()

    def connection_event(self) -> None:
        """The leader dispatched a connection-level method: wake who waits for one."""
        with self._mutex:
            self._connection_events += 1
            waiting = [w for w in self._sleepers.values() if w.scope == CONNECTION]
            for waiter in waiting:
                waiter.signaled = True
        for waiter in waiting:
            waiter.wake()

    def fail(self, exc: BaseException) -> None:
        """The connection failed (or was torn down): every waiting thread raises, now and later."""
        with self._mutex:
            if self._failure is None:
                self._failure = exc
            waiting = list(self._sleepers.values())
        for waiter in waiting:
            waiter.wake()

    @property
    def failure(self) -> BaseException | None:
        """Why the connection failed, once it has."""
        return self._failure

    # -- waiting -----------------------------------------------------------------------

    def next_event(
        self, scope: int, deadline: float | None, read: Read, slice_: float | None = None
    ) -> tuple[int, Item] | None:
        """Wait for one event of ``scope``; read the socket as leader while nobody else does.

        Returns ``(channel_id, item)`` for the caller to dispatch, or ``None``
        when a connection-level method was dispatched meanwhile (scopes
        :data:`CONNECTION` and :data:`DRAIN`). ``read`` is called with at most
        ``slice_`` seconds (``None``: the time left) and may raise
        ``TimeoutError``; a leader keeps reading until the deadline.

        Raises:
            TimeoutError: nothing for ``scope`` by ``deadline``.
            ConnectionLost: the connection failed while this thread waited.
        """
        me = threading.get_ident()
        seen = self._connection_events
        if scope == DRAIN and me not in self._drainers:
            with self._mutex:
                self._drainers[me] = threading.current_thread()
        leading = False
        try:
            while True:
                found, done, waiter = self._look(scope, me, seen, leading)
                if waiter is None and not done:
                    leading = True  # (still) the leader: read on
                if done:
                    return found
                remaining = None if deadline is None else deadline - time.monotonic()
                if leading:
                    wait = remaining if remaining is None or remaining > 0 else 0.0
                    if slice_ is not None and (wait is None or slice_ < wait):
                        wait = slice_
                    try:
                        read(wait)
                    except TimeoutError:
                        if deadline is not None and time.monotonic() >= deadline:
                            found = self._last_look(scope, me)
                            if found is not None:
                                return found
                            raise
                    except BaseException as exc:
                        self.fail(exc)
                        raise
                    continue
                assert waiter is not None
                if remaining is not None and remaining <= 0:
                    self._forget(waiter, scope)
                    found = self._last_look(scope, me)
                    if found is not None:
                        return found
                    raise TimeoutError("timed out")
                if not self._lead.locked():
                    self._forget(waiter, scope)  # the reader stepped down meanwhile: lead
                    continue
                waiter.sleep(
                    FOLLOWER_SLICE if remaining is None else min(remaining, FOLLOWER_SLICE)
                )
                self._forget(waiter, scope)
        finally:
            if leading:
                self._step_down()

    def _look(
        self, scope: int, me: int, seen: int, leading: bool
    ) -> tuple[tuple[int, Item] | None, bool, _Waiter | None]:
        """One look under the lock: ``(event, done, waiter)``.

        ``done`` with an event to return, or ``None`` when a connection-level
        method was dispatched; raises for a failure. Otherwise the caller
        leads (``waiter`` is ``None``: it was or became the leader) or sleeps
        on ``waiter``. A leader keeps the lead until it leaves, so reading on
        for others costs no hand-over.
        """
        wake: _Waiter | None = None
        waiter: _Waiter | None = None
        with self._mutex:
            failure = self._failure
            found = None if failure is not None else self._take_locked(scope, me)
            happened = scope <= CONNECTION and self._connection_events != seen
            done = failure is not None or found is not None or happened
            if not done and not leading and not self._lead.acquire(False):
                waiter = self._sleep_locked(me, scope)
            elif done and not leading and self._sleepers and not self._lead.locked():
                # Leaving while nobody reads: a sleeper must lead (this thread
                # may have been the one woken to do it).
                wake = self._promote_locked()
        if wake is not None:
            wake.wake()
        if failure is not None:
            raise ConnectionLost(failure)
        return found, done, waiter

    def poll(self, scope: int, read_ready: Callable[[], None]) -> tuple[int, Item] | None:
        """Without waiting: read what has arrived (if nobody reads), take one event of ``scope``.

        ``read_ready()`` reads and routes the frames already received, if any.
        The publish path: when nobody reads and nothing waits, this costs one
        lock attempt and what ``read_ready`` costs.
        """
        if self._failure is None and self._lead.acquire(False):
            try:
                read_ready()
            except BaseException as exc:
                self.fail(exc)
                raise
            finally:
                self._step_down()
        slot = self._slots.get(scope)
        if slot is None or not slot.inbox:
            if self._failure is not None:
                raise ConnectionLost(self._failure)
            return None
        with self._mutex:
            return self._take_locked(scope, threading.get_ident())

    # -- internals (mutex held where the name says so) -----------------------------------

    def _take_locked(self, scope: int, me: int) -> tuple[int, Item] | None:
        if scope > 0:
            slot = self._slots.get(scope)
            if slot is None or not slot.inbox:
                return None
            return scope, self._pop_locked(scope, slot)
        if scope != DRAIN or not self._pending:
            return None
        for channel_id, slot in self._pending.items():
            if slot.claimed is None and self._may_drain_locked(slot, me):
                # A consumer nobody drains for is this thread's from now on: its
                # callbacks stay on one thread (after a reconnect, say, when the
                # thread that revived the consumer does not drain).
                slot.user = me
                return channel_id, self._pop_locked(channel_id, slot)
        return None

    def _pop_locked(self, channel_id: int, slot: _Slot) -> Item:
        item = slot.inbox.popleft()
        if not slot.inbox:
            del self._pending[channel_id]
        return item

    def _may_drain_locked(self, slot: _Slot, me: int) -> bool:
        user = slot.user
        if user == me:
            return True
        if not self._is_consuming(slot.channel_id):
            return False
        thread = self._drainers.get(user) if user is not None else None
        return thread is None or not thread.is_alive()

    def _drainer_for_locked(self, slot: _Slot) -> _Waiter | None:
        """The sleeping draining thread that may take ``slot``'s events, if any."""
        user = slot.user
        sleeper = self._sleepers.get(user) if user is not None else None
        if sleeper is not None and sleeper.scope == DRAIN:
            return sleeper
        thread = self._drainers.get(user) if user is not None else None
        if thread is not None and thread.is_alive():
            return None  # it takes them on its next drain
        if not self._is_consuming(slot.channel_id):
            return None
        for waiter in self._sleepers.values():
            if waiter.scope == DRAIN and not waiter.signaled:
                return waiter
        return None

    def _promote_locked(self) -> _Waiter | None:
        """Nobody reads: pick a sleeping thread to wake, so that one of them does."""
        for waiter in self._sleepers.values():
            if not waiter.signaled:
                waiter.signaled = True
                return waiter
        return None

    def _sleep_locked(self, me: int, scope: int) -> _Waiter:
        waiter = _Waiter(me, scope)
        self._sleepers[me] = waiter
        if scope > 0:
            slot = self._slots.get(scope)
            if slot is not None:
                slot.waiter = waiter
        return waiter

    def _step_down(self) -> None:
        """The leader stops reading; a sleeper, if any, is woken to take over."""
        self._lead.release()
        if not self._sleepers:
            return
        with self._mutex:
            wake = None if self._lead.locked() else self._promote_locked()
        if wake is not None:
            wake.wake()

    def _forget(self, waiter: _Waiter, scope: int) -> None:
        with self._mutex:
            if self._sleepers.get(waiter.ident) is waiter:
                del self._sleepers[waiter.ident]
            if scope > 0:
                slot = self._slots.get(scope)
                if slot is not None and slot.waiter is waiter:
                    slot.waiter = None

    def _last_look(self, scope: int, me: int) -> tuple[int, Item] | None:
        with self._mutex:
            return None if self._failure is not None else self._take_locked(scope, me)

    def __repr__(self) -> str:
        with self._mutex:
            queued = sum(len(slot.inbox) for slot in self._pending.values())
            leader = "reading" if self._lead.locked() else "idle"
            failed = " failed" if self._failure is not None else ""
            return (
                f"<Demux {leader} channels={len(self._slots)} queued={queued} "
                f"sleeping={len(self._sleepers)}{failed}>"
            )
