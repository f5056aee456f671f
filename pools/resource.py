"""One generic bounded, thread-safe, fork-safe pool that the others build on.

:class:`ResourcePool` keeps *items* (connections, channels, producers) that
are expensive to make. Subclasses say how to create, check and dispose of an
item; this module owns the bookkeeping:

* **Bounded.** At most ``limit`` items exist (idle + borrowed + being made).
* **LIFO idle stack.** The most recently returned item is handed out first:
  it is the warmest, and cold ones gather at the bottom where expiry finds them.
* **FIFO waiters.** Callers that wait are served in arrival order. Only the
  first waiter is woken when an item comes back; a running thread may take
  that item first, but only for ``fairness_window`` seconds, after which
  returned items go straight to the waiters. No waiter starves, and a busy
  pool does not pay a thread switch per checkout.
* **No lock on the way in and out.** Taking an idle item and putting one
  back are single ``list.pop()`` / ``list.append()`` calls, which the GIL
  makes atomic, so a checkout never waits for another thread. Under the GIL a
  thread preempted while it holds a lock makes every other thread that wants
  that lock sleep in the kernel and then queue for the GIL again, one switch
  per hand-over (a lock convoy): with a lock on every checkout, 8 threads
  sharing 8 items ran ten times slower than one. The pool lock guards only
  what is rare: counting slots, queueing waiters, handing items to them, and
  administration. The protocol that lets the two meet without losing a
  wake-up is described in :mod:`pools.lease` (``Waiter``).
* **Decisions under the lock, I/O outside it.** A slot is reserved under the
  lock and the item created after releasing it; if creation fails the slot is
  given back and the next waiter is woken.
* **Fork safety.** After ``os.fork()`` the child forgets every item the parent
  made, without closing it, and starts empty (see :mod:`pools.fork`).

Logging goes to the ``broker.pool`` logger: DEBUG for creation, replacement,
disposal and waiting, INFO for resize, ``force_close_all`` and ``close``. The
plain hand-out and return of an idle item is not logged, to keep it cheap.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from broker.errors import ConfigurationError, LimitExceeded
from pools import fork
from pools.admin import PoolAdmin
from pools.lease import CLOSED, SERVED, Entry, Lease, PoolClosed, Waiter
from pools.limits import DEFAULT_LIMIT, check_limit, check_seconds, get_limit

__all__ = ["DEFAULT_LIMIT", "ResourcePool", "check_limit", "get_limit"]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")

_monotonic = time.monotonic

# Whether the GIL is on (always, before 3.13; free-threaded builds can turn it
# off, and then returns take the pool lock: see Waiter in pools.lease).
_gil_enabled: Callable[[], bool] = getattr(sys, "_is_gil_enabled", lambda: True)


class ResourcePool(PoolAdmin[T]):
    """A bounded pool of items made by :meth:`create_resource`.

    Subclasses override the hooks (``create_resource``, ``dispose_resource``
    and optionally ``preload_resource``, ``check_out``, ``check_in``,
    ``is_broken_error``, ``abandon_resource``). Hooks run outside the lock.

    Args:
        limit: the most items that may exist at once; ``None`` means
            :func:`get_limit` at construction time. Always bounded.
        preload: how many items to create now, in the constructor (their I/O
            happens here and its errors propagate); the rest are made on demand.
        max_idle_time: seconds an item may sit idle before it is closed instead
            of handed out; ``None`` keeps idle items forever.
        max_lifetime: seconds after creation when an item is retired (closed
            at its next checkout or return); ``None`` for no limit.
        verify_after: an idle item is checked with :meth:`check_out` on checkout
            only when it has been idle at least this many seconds (``0``: on
            every checkout). An item returned healthy a moment ago is handed
            out without the check; if it broke meanwhile, the first call on it
            raises and the pool replaces it when it comes back.
        clock: the monotonic time source for the durations (tests inject one).

    Raises:
        ConfigurationError: a bad ``limit``, ``preload`` or duration.
    """

    #: Raised by :meth:`acquire` when the limit is reached.
    LimitExceeded: ClassVar[type[LimitExceeded]] = LimitExceeded
    #: The lease type handed out by :meth:`acquire`.
    lease_class: ClassVar[type[Lease[Any]]] = Lease
    #: Seconds the first waiter may be overtaken by running threads taking a
    #: just-returned item; after that returned items go to waiters in order.
    fairness_window: ClassVar[float] = 0.005

    def __init__(
        self,
        limit: int | None = None,
        *,
        preload: int | None = None,
        max_idle_time: float | None = None,
        max_lifetime: float | None = None,
        verify_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = get_limit() if limit is None else check_limit(limit)
        n_preload = 0 if preload is None else preload
        if isinstance(n_preload, bool) or not isinstance(n_preload, int) or n_preload < 0:
            raise ConfigurationError(f"preload must be None or an int >= 0, got {preload!r}")
        if n_preload > self._limit:
            raise ConfigurationError(
                f"preload={n_preload} is larger than limit={self._limit}; "
                "preload at most as many items as the pool may hold"
            )
        self._max_idle_time = check_seconds(max_idle_time, "max_idle_time")
        self._max_lifetime = check_seconds(max_lifetime, "max_lifetime")
        checked = check_seconds(verify_after, "verify_after", allow_zero=True)
        if checked is None:
            raise ConfigurationError("verify_after must be a number of seconds >= 0, got None")
        self._verify_after = checked
        self._timed = self._max_idle_time is not None or self._max_lifetime is not None
        # Returns that always go through the lock: timed pools trim the stack
        # on return, and without the GIL a lock-free push is not safe.
        self._locked_returns = self._timed or not _gil_enabled()
        self._clock = clock
        # Skip hook calls on the hot path when a subclass keeps the defaults.
        self._checks_out = type(self).check_out is not ResourcePool.check_out
        self._checks_in = type(self).check_in is not ResourcePool.check_in
        self._init_state()
        fork.register(self)
        if n_preload:
            self._preload(n_preload)

    # -- hooks (run outside the lock) -------------------------------------------

    def create_resource(self) -> T:
        """Make a new item (may do I/O)."""
        raise NotImplementedError

    def preload_resource(self) -> T:
        """Make an item for ``preload`` (default: :meth:`create_resource`)."""
        return self.create_resource()

    def dispose_resource(self, obj: T, reason: str) -> None:
        """Get rid of an item the pool no longer keeps.

        ``reason`` is ``'broken'`` (failed a check or raised a breaking error:
        tear down fast), ``'forced'`` (borrowed when :meth:`force_close_all`
        ran: tear down fast), or a graceful one: ``'expired'``, ``'idle'``,
        ``'shrink'``, ``'closed'``. Must be idempotent: an item torn down as
        ``'forced'`` is disposed of again (``'closed'``) when it comes back,
        in case its borrower reopened it meanwhile.
        """

    def check_out(self, obj: T) -> bool:
        """Whether an idle item is still usable (must not block). Default: True."""
        return True

    def check_in(self, obj: T) -> bool:
        """Whether a returned item may be kept. Default: True."""
        return True

    def is_broken_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` raised inside a ``with`` block means the item is broken."""
        return False

    def abandon_resource(self, obj: T) -> None:
        """Forget an item inherited from the parent process (no I/O). Default: nothing."""

    # -- acquire and release --------------------------------------------------------

    def acquire(self, block: bool = False, timeout: float | None = None) -> Lease[T]:
        """Borrow an item: an idle one (most recent first), else a new one.

        Args:
            block: when the limit is reached, wait for an item instead of
                raising at once.
            timeout: with ``block=True``, the most seconds to wait; ``None``
                waits until an item is free.

        Returns:
            A :class:`Lease`; give it back with ``release()`` or a ``with`` block.

        Raises:
            LimitExceeded: the limit is reached and ``block`` is false, or no
                item became free within ``timeout`` (the subclass's own class,
                e.g. ``ConnectionLimitExceeded``).
            PoolClosed: the pool was closed.
        """
        # The fork hook keeps fork.pid current, so this pid check costs no
        # system call (os.getpid() is one, and this is every checkout).
        if self._pid != fork.pid:
            self._reset_after_fork()
        lease = self.lease_class()
        lease._pool = self
        if self._waiters and not self._may_overtake():
            return self._acquire_slow(lease, block, timeout)  # queue behind the waiters
        try:
            entry = self._idle.pop()  # atomic: this entry is now ours alone
        except IndexError:
            return self._acquire_slow(lease, block, timeout)
        # Items put back just as close(), force_close_all() or a shrink ran
        # may be stale; whoever takes such an item off the stack drops it.
        if entry.gen != self._gen or self._size > self._limit:
            self._drop_stale(entry)
            return self._acquire_slow(lease, block, timeout)
        lease._entry = entry
        self._lent[lease] = entry
        if self._checks_out or self._timed:
            now = self._clock()
            if (
                self._checks_out
                and now - entry.idle_since >= self._verify_after
                and not self.check_out(entry.obj)
            ) or (self._timed and self._expired(entry, now)):
                self._replace(lease, entry)
        return lease

    def _release(self, lease: Lease[T], broken: bool) -> None:
        # Popping the lease out of _lent is the atomic claim: of two releases
        # of one lease (even racing in two threads) exactly one gets the entry.
        entry = self._lent.pop(lease, None)
        if entry is None:
            self._release_unlent(lease)
            return
        lease._entry = None
        if self._checks_in and not broken and not self.check_in(entry.obj):
            broken = True
        if broken or self._locked_returns or (self._waiters and not self._may_overtake()):
            self._checkin_locked(entry, broken)
            return
        if self._checks_out:
            entry.idle_since = self._clock()
        self._idle.append(entry)
        # The push comes first, the look second (see Waiter): a waiter that
        # queued before this look is notified here; one that queued after it
        # sees the item when it looks at the stack after queueing.
        if self._waiters or entry.gen != self._gen or self._size > self._limit:
            self._after_push(entry)

    # -- the slow paths of release ------------------------------------------------------

    def _checkin_locked(self, entry: Entry[T], broken: bool) -> None:
        """Take the lock for a return that is not a plain push; dispose outside it."""
        with self._lock:
            reason, victims = self._checkin_slow(entry, broken)
        if reason is not None:
            logger.debug("%r discarding %s item %r", self, reason, entry.obj)
            self._dispose(entry, reason)
        self._dispose_all(victims, "idle")

    def _checkin_slow(self, entry: Entry[T], broken: bool) -> tuple[str | None, list[Entry[T]]]:
        """Under the lock: a return to check, hand to a waiter, or push and trim.

        Returns why the entry must be disposed of (None if it was kept or handed
        to a waiter), and idle entries that expired meanwhile.
        """
        victims: list[Entry[T]] = []
        if entry.pid != self._pid:
            # Inherited across fork; the reset already forgot it and its slot.
            fork.abandon(self, entry.obj)
            return None, victims
        now = self._clock() if self._timed else 0.0
        reason = self._unfit(entry, broken)
        life_max = self._max_lifetime
        if reason is None and life_max is not None and now - entry.created > life_max:
            reason = "expired"  # (idle time does not count while borrowed)
        if reason is not None:
            self._size -= 1
            self._entries.discard(entry)
            self._grant_free_slots()
        elif self._waiters and not self._may_overtake():
            # The first waiter has waited long enough: hand the item straight over.
            waiter = self._waiters.popleft()
            self._lend(waiter.lease, entry)
            waiter.wake(SERVED)
            self._notify_head()  # the new head's turn, if anything is idle
        else:
            entry.idle_since = now if self._timed else self._clock()
            self._idle.append(entry)
            max_idle = self._max_idle_time
            if max_idle is not None:
                victims = self._take_where(lambda idle: now - idle.idle_since > max_idle)
            self._grant_free_slots()  # (it also notifies the first waiter)
        return reason, victims

    def _after_push(self, entry: Entry[T]) -> None:
        """After a lock-free push: take back a stale entry, or wake the first waiter."""
        if entry.gen != self._gen or self._size > self._limit:
            reason = None
            with self._lock:
                try:
                    self._idle.remove(entry)  # atomic: fails if an acquirer took it
                except ValueError:
                    pass  # ...and that acquirer drops it (see acquire)
                else:
                    reason = self._unfit(entry, False)
                    if reason is None:
                        self._idle.append(entry)  # fine after all (the limit grew back)
                    else:
                        self._size -= 1
                        self._entries.discard(entry)
                        self._grant_free_slots()
            if reason is not None:
                logger.debug("%r discarding %s item %r", self, reason, entry.obj)
                self._dispose(entry, reason)
        self._notify_head()

    def _release_unlent(self, lease: Lease[T]) -> None:
        """A release whose lease is not lent out: released already, or inherited at fork."""
        entry = getattr(lease, "_entry", None)
        if entry is not None and entry.pid != fork.pid:
            lease._entry = None
            fork.abandon(self, entry.obj)  # the fork reset forgot it and its slot

    # -- the slow paths of acquire ----------------------------------------------------

    def _acquire_slow(self, lease: Lease[T], block: bool, timeout: float | None) -> Lease[T]:
        """No idle item for us on the lock-free path: take one, reserve a slot, or wait."""
        lease._entry = None
        waiter: Waiter | None = None
        stale: list[tuple[Entry[T], str]] = []
        try:
            with self._lock:
                if self._closed:
                    raise PoolClosed(f"{self!r} is closed; create a new pool")
                entry = self._take_if_allowed(stale)
                if entry is None:
                    if self._size < self._limit:
                        self._size += 1  # a free slot, reserved for us
                    elif not block:
                        raise self.LimitExceeded(self._limit_message())
                    else:
                        check_seconds(timeout, "timeout", allow_zero=True)
                        waiter = Waiter(lease)
                        self._waiters.append(waiter)
                        # Queue first, look second (see Waiter): an item pushed
                        # before we queued was announced to no one.
                        entry = self._take_if_allowed(stale, waiter)
                        if entry is not None:
                            waiter = None
                        else:
                            self._notify_head()
                if entry is not None:
                    self._lend(lease, entry)
        finally:
            self._dispose_stale(stale)
        if waiter is not None:
            try:
                entry = self._wait(waiter, timeout)
            except BaseException:
                self._withdraw(waiter)
                raise
        if entry is None:  # a slot was reserved for us
            self._create_for(lease)
        elif (
            entry.gen != self._gen  # force_close_all() ran meanwhile
            or (self._checks_out and not self.check_out(entry.obj))
            or (self._timed and self._expired(entry, self._clock()))
        ):
            self._replace(lease, entry)
        return lease

    def _take_if_allowed(
        self, stale: list[tuple[Entry[T], str]], waiter: Waiter | None = None
    ) -> Entry[T] | None:
        """Under the lock: pop a fit idle entry if we may (head ``waiter``, or no one waits).

        A ``waiter`` that gets an entry leaves the queue. Stale entries met on
        the way give up their slots and go to ``stale``, for the caller to
        dispose of once the lock is released.
        """
        waiters = self._waiters
        while self._idle:
            if waiter is None:
                if waiters and not self._may_overtake():
                    return None
            elif not waiters or waiters[0] is not waiter:
                return None  # (a slot freed by a stale entry may have served us)
            try:
                entry = self._idle.pop()
            except IndexError:  # a lock-free acquirer was quicker
                return None
            if entry.gen == self._gen and self._size <= self._limit:
                if waiter is not None:
                    waiters.popleft()
                    self._notify_head()  # more may be idle: the next waiter's turn
                return entry
            stale.append((entry, self._forget_stale(entry)))
        return None

    def _wait(self, waiter: Waiter, timeout: float | None) -> Entry[T] | None:
        """Block until served; return the entry obtained, or None to create one.

        A notified first waiter takes an idle item if one is still there (a
        running thread may have taken it within the fairness window); if not,
        it waits again, keeping its place at the head of the queue.
        """
        logger.debug("%r: waiting (timeout=%s)", self, timeout)
        deadline = None if timeout is None else _monotonic() + timeout
        gate = waiter.gate
        stale: list[tuple[Entry[T], str]] = []
        while True:
            if deadline is None:
                opened = gate.acquire()
            else:
                remaining = deadline - _monotonic()
                opened = remaining > 0 and gate.acquire(
                    timeout=min(remaining, threading.TIMEOUT_MAX)
                )
            # Re-arm before looking (see Waiter): a push after this line
            # notifies us again; one before it is seen by the look below.
            waiter.notified = False
            if waiter.state == SERVED:  # set under the lock before the gate opened
                return waiter.lease._entry
            try:
                with self._lock:
                    if waiter.state == CLOSED:
                        raise PoolClosed(f"{self!r} was closed while waiting")
                    entry = self._take_if_allowed(stale, waiter)
                    if entry is not None:
                        self._lend(waiter.lease, entry)
                        return entry
                    if waiter.state == SERVED:
                        return waiter.lease._entry
                    if opened:
                        continue  # nothing left for us (taken first): wait again
                    self._waiters.remove(waiter)
                    self._notify_head()
                    message = f"{self._limit_message()} (waited {timeout} s)"
            finally:
                self._dispose_stale(stale)
            logger.debug("%r: gave up waiting after %s s", self, timeout)
            raise self.LimitExceeded(message)

    def _create_for(self, lease: Lease[T]) -> None:
        """Fill a reserved slot; on failure give it back and wake the next waiter."""
        try:
            obj = self.create_resource()
        except BaseException:
            with self._lock:
                self._size -= 1
                self._grant_free_slots()
            raise
        created = self._now()
        with self._lock:
            closed = self._closed
            if closed:  # closed while we were creating: keep nothing
                self._size -= 1
            else:
                entry = Entry(obj, self._gen, self._pid, created)
                self._entries.add(entry)
                self._lend(lease, entry)
        if closed:
            self._dispose(Entry(obj, self._gen, self._pid, created), "closed")
            raise PoolClosed(f"{self!r} was closed while an item was made for {lease!r}")
        logger.debug("%r created %r", self, obj)

    def _replace(self, lease: Lease[T], entry: Entry[T]) -> None:
        """A lent item failed its checkout check: dispose of it, make another in its slot."""
        reason = "broken"
        if entry.gen != self._gen:
            reason = "closed"
        elif self._timed and self._expired(entry, self._clock()):
            reason = "expired"
        logger.debug("%r replacing %s idle item %r", self, reason, entry.obj)
        with self._lock:
            lease._entry = None
            self._lent.pop(lease, None)
            self._entries.discard(entry)
        self._dispose(entry, reason)
        self._create_for(lease)

    def _may_overtake(self) -> bool:
        """Whether a running thread may still take an item ahead of the first waiter."""
        try:
            head = self._waiters[0]
        except IndexError:
            return True
        return _monotonic() - head.since < self.fairness_window

    def _notify_head(self) -> None:
        """Tell the first waiter an item may be idle; needs no lock (see Waiter)."""
        if self._idle:
            try:
                head = self._waiters[0]
            except IndexError:
                return
            head.notify()
