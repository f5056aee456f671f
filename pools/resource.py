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

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from broker.errors import ConfigurationError, LimitExceeded
from pools import fork
from pools.admin import PoolAdmin
from pools.lease import (
    CLOSED,
    NOTIFIED,
    SERVED,
    WAITING,
    Entry,
    Lease,
    PoolClosed,
    Waiter,
)
from pools.limits import DEFAULT_LIMIT, check_limit, check_seconds, get_limit

__all__ = ["DEFAULT_LIMIT", "ResourcePool", "check_limit", "get_limit"]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")

_getpid = os.getpid
_monotonic = time.monotonic


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
        self._clock = clock
        # Skip hook calls on the hot path when a subclass keeps the defaults.
        self._checks_out = type(self).check_out is not ResourcePool.check_out
        self._checks_in = type(self).check_in is not ResourcePool.check_in
        self._lock = threading.Lock()
        self._idle: list[Entry[T]] = []  # a stack: the top is the most recently returned
        self._entries: set[Entry[T]] = set()  # every live item, idle or borrowed
        # Slots taken: idle + borrowed + reserved for creation. in_use is
        # _size - len(_idle), so the hot path touches no counter at all.
        self._size = 0
        self._waiters: collections.deque[Waiter] = collections.deque()
        self._gen = 0
        self._closed = False
        self._pid = _getpid()
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
        # Explicit acquire/release instead of ``with``: half the cost on 3.11,
        # and this is the path every checkout takes.
        lock = self._lock
        lock.acquire()
        try:
            if self._closed:
                raise PoolClosed(f"{self!r} is closed; create a new pool")
            idle = self._idle
            entry: Entry[T] | None
            if idle:
                entry = lease._entry = idle.pop()
            else:
                entry = lease._entry = None
                waiter = self._reserve_or_queue(lease, block, timeout)
        finally:
            lock.release()
        if entry is not None:  # the hot path: an idle item, checked outside the lock
            if self._checks_out or self._timed:
                now = self._clock()
                if (
                    self._checks_out
                    and now - entry.idle_since >= self._verify_after
                    and not self.check_out(entry.obj)
                ) or (self._timed and self._expired(entry, now)):
                    self._replace(lease, entry)
            return lease
        if waiter is None:  # a free slot was reserved for us
            self._create_for(lease)
            return lease
        handed = self._wait(waiter, timeout)
        if handed is None:  # a slot was freed for us
            self._create_for(lease)
        elif (
            handed.gen != self._gen  # force_close_all() ran before we woke up
            or (self._checks_out and not self.check_out(handed.obj))
            or (self._timed and self._expired(handed, self._clock()))
        ):
            self._replace(lease, handed)
        return lease

    def _release(self, lease: Lease[T], broken: bool) -> None:
        entry = lease._entry
        if entry is None:
            return  # already released (e.g. release() inside a with block)
        if self._checks_in and not broken and not self.check_in(entry.obj):
            broken = True
        lock = self._lock
        lock.acquire()
        try:
            if lease._entry is not entry:
                return  # lost a race with another release of the same lease
            lease._entry = None
            # close(), force_close_all() and a fork reset all bump the
            # generation, so one comparison covers them on the hot path.
            if (
                broken
                or entry.gen != self._gen
                or self._waiters
                or self._timed
                or self._size > self._limit
            ):
                reason, victims = self._checkin_slow(entry, broken)
            else:
                if self._checks_out:
                    entry.idle_since = self._clock()
                self._idle.append(entry)
                return
        finally:
            lock.release()
        if reason is not None:
            logger.debug("%r discarding %s item %r", self, reason, entry.obj)
            self._dispose(entry, reason)
        self._dispose_all(victims, "idle")

    def _checkin_slow(self, entry: Entry[T], broken: bool) -> tuple[str | None, list[Entry[T]]]:
        """Under the lock: every return that is not a plain push onto the idle stack.

        Returns why the entry must be disposed of (None if it was kept or handed
        to a waiter), and idle entries that expired meanwhile.
        """
        victims: list[Entry[T]] = []
        if entry.pid != self._pid:
            # Inherited across fork; the reset already forgot it and its slot.
            fork.abandon(self, entry.obj)
            return None, victims
        now = self._clock() if self._timed else 0.0
        reason = None
        if entry not in self._entries:
            # Torn down by force_close_all() while borrowed; close it again in
            # case the borrower reopened it meanwhile (disposal is idempotent).
            reason = "closed"
        elif broken:
            reason = "broken"
        elif self._closed or entry.gen != self._gen:
            reason = "closed"
        elif self._size > self._limit:
            reason = "shrink"
        elif self._max_lifetime is not None and now - entry.created > self._max_lifetime:
            reason = "expired"  # (idle time does not count while borrowed)
        if reason is not None:
            self._size -= 1
            self._entries.discard(entry)
            self._grant_free_slots()
        elif self._waiters and _monotonic() - self._waiters[0].since >= self.fairness_window:
            # The first waiter has waited long enough: hand the item straight over.
            waiter = self._waiters.popleft()
            waiter.lease._entry = entry
            waiter.wake(SERVED)
        else:
            entry.idle_since = now
            idle = self._idle
            idle.append(entry)
            # The stack is ordered by idle_since, so stale items sit at the bottom.
            max_idle = self._max_idle_time
            if max_idle is not None:
                while idle and now - idle[0].idle_since > max_idle:
                    victims.append(idle.pop(0))
                self._forget(victims)
                self._size -= len(victims)
            self._grant_free_slots()  # (it also notifies the first waiter)
        return reason, victims

    # -- the slow paths of acquire ----------------------------------------------------

    def _reserve_or_queue(
        self, lease: Lease[T], block: bool, timeout: float | None
    ) -> Waiter | None:
        """Under the lock, no idle item: reserve a free slot (None) or queue a waiter."""
        if self._size < self._limit:
            self._size += 1
            return None
        if not block:
            raise self.LimitExceeded(self._limit_message())
        check_seconds(timeout, "timeout", allow_zero=True)
        waiter = Waiter(lease)
        self._waiters.append(waiter)
        return waiter

    def _wait(self, waiter: Waiter, timeout: float | None) -> Entry[T] | None:
        """Block until served; return the entry obtained, or None to create one.

        A notified first waiter takes an idle item if one is still there (a
        running thread may have taken it within the fairness window); if not,
        it waits again, keeping its place at the head of the queue.
        """
        logger.debug("%r: waiting (timeout=%s)", self, timeout)
        deadline = None if timeout is None else _monotonic() + timeout
        gate = waiter.gate
        while True:
            if deadline is None:
                opened = gate.acquire()
            else:
                remaining = deadline - _monotonic()
                opened = remaining > 0 and gate.acquire(
                    timeout=min(remaining, threading.TIMEOUT_MAX)
                )
            with self._lock:
                state = waiter.state
                if state == SERVED:
                    return waiter.lease._entry
                if state == CLOSED:
                    raise PoolClosed(f"{self!r} was closed while waiting")
                waiters, idle = self._waiters, self._idle
                if idle and waiters[0] is waiter:
                    waiters.popleft()
                    entry = waiter.lease._entry = idle.pop()
                    self._notify_head()
                    return entry
                if opened or state == NOTIFIED:
                    waiter.state = WAITING  # nothing left for us: wait again
                    if opened:
                        continue
                    gate.acquire()  # notified just as the timeout fired: shut the gate
                waiters.remove(waiter)
                self._notify_head()
                message = f"{self._limit_message()} (waited {timeout} s)"
            logger.debug("%r: gave up waiting after %s s", self, timeout)
            raise self.LimitExceeded(message)

    def _create_for(self, lease: Lease[T]) -> None:
        """Fill a reserved slot; on failure give it back and wake the next waiter."""
        try:
            entry = self._new_entry(self.create_resource())
        except BaseException:
            with self._lock:
                self._size -= 1
                self._grant_free_slots()
            raise
        with self._lock:
            self._entries.add(entry)
            lease._entry = entry
        logger.debug("%r created %r", self, entry.obj)

    def _replace(self, lease: Lease[T], entry: Entry[T]) -> None:
        """An idle item failed its checkout check: dispose of it, make another in its slot."""
        reason = "broken"
        if self._timed and self._expired(entry, self._clock()):
            reason = "expired"
        logger.debug("%r replacing %s idle item %r", self, reason, entry.obj)
        with self._lock:
            lease._entry = None
            self._entries.discard(entry)
        self._dispose(entry, reason)
        self._create_for(lease)

    def _new_entry(self, obj: T) -> Entry[T]:
        return Entry(obj, self._gen, _getpid(), self._clock() if self._timed else 0.0)

    def _expired(self, entry: Entry[T], now: float) -> bool:
        idle_max, life_max = self._max_idle_time, self._max_lifetime
        return (idle_max is not None and now - entry.idle_since > idle_max) or (
            life_max is not None and now - entry.created > life_max
        )

    def _limit_message(self) -> str:
        return (
            f"{type(self).__name__} limit of {self._limit} reached ({self.in_use} in use); "
            "release one, pass block=True to wait, or raise the limit"
        )

    def _preload(self, n: int) -> None:
        made: list[Entry[T]] = []
        try:
            for _ in range(n):
                made.append(self._new_entry(self.preload_resource()))
        except BaseException:
            self._dispose_all(made, "closed")
            raise
        with self._lock:
            self._idle.extend(made)
            self._entries.update(made)
            self._size += len(made)
        logger.debug("%r preloaded %d", self, n)

    # -- under the lock ---------------------------------------------------------------

    def _grant_free_slots(self) -> None:
        """Let waiters create items in any free slot, first come first served."""
        waiters = self._waiters
        while waiters and self._size < self._limit:
            waiter = waiters.popleft()
            self._size += 1
            waiter.wake(SERVED)
        self._notify_head()

    def _notify_head(self) -> None:
        """Tell the first waiter that an idle item is there."""
        if self._idle and self._waiters:
            head = self._waiters[0]
            if head.state == WAITING:
                head.wake(NOTIFIED)

    def _forget(self, entries: list[Entry[T]]) -> None:
        self._entries.difference_update(entries)

    def _take_idle(self, count: int | None = None) -> list[Entry[T]]:
        """Remove (the ``count`` least recently used, or all) idle items from the pool."""
        idle = self._idle
        taken = idle[:count] if count is not None else idle[:]
        del idle[: len(taken)]
        self._forget(taken)
        self._size -= len(taken)
        self._grant_free_slots()
        return taken

    # -- helpers ------------------------------------------------------------------------

    def _dispose(self, entry: Entry[T], reason: str) -> None:
        if entry.pid != _getpid():
            fork.abandon(self, entry.obj)
            return
        try:
            self.dispose_resource(entry.obj, reason)
        except Exception:  # teardown must never break a release
            logger.debug("%r error disposing of %r", self, entry.obj, exc_info=True)

    def _dispose_all(self, entries: list[Entry[T]], reason: str) -> None:
        for entry in entries:
            self._dispose(entry, reason)
