"""A pool's state, its administration, and the bookkeeping done under its lock.

Mixed into :class:`pools.resource.ResourcePool`, which owns acquire and
release. Everything here runs under the pool lock, but acquirers and most
releasers do not take it: they pop items off and push items onto the idle
stack without it. So nothing here may assume that the stack holds still: an
entry leaves it only through an atomic ``pop()`` or ``remove()``, which
either gets the entry (and then it is the caller's alone) or fails because
someone else got it first.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from broker.errors import ConfigurationError
from pools import fork
from pools.lease import CLOSED, SERVED, Entry, Lease, Waiter
from pools.limits import check_limit

__all__ = ["PoolAdmin"]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")

_getpid = os.getpid


class PoolAdmin(Generic[T]):
    """Counts, ``repr``, release by object, resize, force_close_all, close, prune.

    Also the pool's state (:meth:`_init_state`) and the helpers that keep its
    books: slots, the idle stack, waiters served a free slot, disposal.
    """

    _lock: threading.Lock
    _limit: int
    _size: int
    _idle: list[Entry[T]]
    _entries: set[Entry[T]]
    _waiters: collections.deque[Waiter]
    _lent: dict[Lease[T], Entry[T]]
    _gen: int
    _pid: int
    _closed: bool
    _timed: bool
    _max_idle_time: float | None
    _max_lifetime: float | None
    _clock: Callable[[], float]
    _notify_head: Callable[[], None]
    _release: Callable[[Lease[T], bool], None]
    abandon_resource: Callable[[T], None]
    dispose_resource: Callable[[T, str], None]
    preload_resource: Callable[[], T]
    lease_class: ClassVar[type[Lease[Any]]]

    def _init_state(self) -> None:
        """The empty pool: no items, no waiters (also the state after a fork)."""
        self._lock = threading.Lock()
        self._idle = []  # a stack: the top is the most recently returned
        self._entries = set()  # every live item, idle or borrowed
        self._lent = {}  # lease -> entry, for every lease not yet released
        # Slots taken: idle + borrowed + reserved for creation. in_use is
        # _size - len(_idle), so the hot path touches no counter at all.
        self._size = 0
        self._waiters = collections.deque()
        self._gen = 0
        self._closed = False
        self._pid = _getpid()

    @property
    def limit(self) -> int:
        """The most items that may exist at once."""
        return self._limit

    @property
    def in_use(self) -> int:
        """Items currently borrowed (including ones being created for a borrower)."""
        return self._size - len(self._idle)

    @property
    def idle(self) -> int:
        """Items in the pool, ready to be handed out."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Callers blocked in ``acquire()``."""
        return len(self._waiters)

    @property
    def is_closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __repr__(self) -> str:
        closed = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} limit={self._limit} in_use={self.in_use} "
            f"idle={len(self._idle)} waiting={len(self._waiters)}{closed}>"
        )

    def release(self, resource: Any) -> None:
        """Give back what :meth:`acquire` returned. Releasing twice is a no-op."""
        self._release(self._lease_of(resource), False)

    def discard(self, resource: Any) -> None:
        """Give back a lease as broken: its item is disposed of and the slot freed."""
        self._release(self._lease_of(resource), True)

    def _lease_of(self, resource: Any) -> Lease[T]:
        if isinstance(resource, Lease):
            if resource._pool is not self:
                raise ConfigurationError(f"{resource!r} was not acquired from {self!r}")
            return resource
        raise ConfigurationError(
            f"release() takes what acquire() returned (a lease), got {resource!r}"
        )

    def resize(self, limit: int) -> None:
        """Change the limit.

        Growing wakes waiters at once. Shrinking closes surplus idle items at
        once (least recently used first); if borrowed items alone exceed the
        new limit, each one returned is closed instead of kept until the pool
        fits, and nothing new is handed out meanwhile.

        Raises:
            ConfigurationError: ``limit`` is not a positive integer.
        """
        new = check_limit(limit)
        with self._lock:
            old, self._limit = self._limit, new
            excess = self._size - new
            victims = self._take_idle(excess) if excess > 0 else []
            self._grant_free_slots()
        logger.info("%r resized from %d to %d (%d idle closed)", self, old, new, len(victims))
        self._dispose_all(victims, "shrink")

    def force_close_all(self) -> None:
        """Close every item, idle and borrowed; the pool stays usable.

        Idle items are closed gracefully. Borrowed ones are torn down at once
        (their holder gets an error on next use) and discarded when returned;
        their slots stay taken until then.
        """
        with self._lock:
            self._gen += 1
            idle = self._take_idle()
            borrowed = list(self._entries)
            self._entries.clear()
        logger.info("%r force_close_all: %d idle, %d borrowed", self, len(idle), len(borrowed))
        self._dispose_all(idle, "closed")
        self._dispose_all(borrowed, "forced")

    def close(self) -> None:
        """Close the pool: idle items now, borrowed ones when they are returned.

        Waiters and later ``acquire()`` calls raise :class:`pools.PoolClosed`.
        Safe to call twice.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._gen += 1
            waiters, self._waiters = self._waiters, collections.deque()
            for waiter in waiters:
                waiter.wake(CLOSED)
            idle = self._take_idle()
        logger.info("%r closed (%d idle closed)", self, len(idle))
        self._dispose_all(idle, "closed")

    def prune(self) -> int:
        """Close idle items past ``max_idle_time`` or ``max_lifetime`` now.

        Expired items are never handed out anyway; this only lets go of broker
        resources sooner (call it from a housekeeping timer). Returns the count.
        """
        if not self._timed:
            return 0
        now = self._clock()
        with self._lock:
            victims = self._take_where(lambda entry: self._expired(entry, now))
        self._dispose_all(victims, "expired")
        return len(victims)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- fork ---------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's items and start empty.

        The old lock may have been held by a parent thread at fork time, so it
        is replaced, never acquired.
        """
        if self._pid == _getpid():
            return
        inherited = list(self._entries)
        gen, closed = self._gen, self._closed
        self._init_state()
        self._gen, self._closed = gen + 1, closed
        for entry in inherited:
            fork.abandon(self, entry.obj)
        self._after_fork()
        logger.debug("%r reset after fork (%d inherited items dropped)", self, len(inherited))

    def _after_fork(self) -> None:
        """Subclass hook run in the child after the generic reset."""

    # -- under the lock -------------------------------------------------------------

    def _grant_free_slots(self) -> None:
        """Let waiters create items in any free slot, first come first served."""
        waiters = self._waiters
        while waiters and self._size < self._limit:
            waiter = waiters.popleft()
            self._size += 1
            waiter.wake(SERVED)
        self._notify_head()

    def _forget(self, entries: list[Entry[T]]) -> None:
        self._entries.difference_update(entries)

    def _take_idle(self, count: int | None = None) -> list[Entry[T]]:
        """Remove (the ``count`` least recently used, or all) idle items from the pool."""
        idle = self._idle
        taken: list[Entry[T]] = []
        while count is None or len(taken) < count:
            try:
                taken.append(idle.pop(0))  # atomic, like the acquirers' pop()
            except IndexError:
                break
        self._forget(taken)
        self._size -= len(taken)
        self._grant_free_slots()
        return taken

    def _take_where(self, stale: Callable[[Entry[T]], bool]) -> list[Entry[T]]:
        """Remove the idle items for which ``stale`` is true (bottom first)."""
        idle = self._idle
        taken: list[Entry[T]] = []
        for entry in list(idle):
            if stale(entry):
                try:
                    idle.remove(entry)  # atomic: fails if an acquirer took it meanwhile
                except ValueError:
                    continue
                taken.append(entry)
        self._forget(taken)
        self._size -= len(taken)
        self._grant_free_slots()
        return taken

    def _lend(self, lease: Lease[T], entry: Entry[T]) -> None:
        lease._entry = entry
        self._lent[lease] = entry

    def _unfit(self, entry: Entry[T], broken: bool) -> str | None:
        """Why a returned (or stale) entry may not be kept, or None if it may."""
        if entry not in self._entries:
            # Torn down by force_close_all() while borrowed; close it again in
            # case the borrower reopened it meanwhile (disposal is idempotent).
            return "closed"
        if broken:
            return "broken"
        if self._closed or entry.gen != self._gen:
            return "closed"
        if self._size > self._limit:
            return "shrink"
        return None

    def _forget_stale(self, entry: Entry[T]) -> str:
        """Give up the slot of an entry that must not be handed out; the disposal reason."""
        reason = self._unfit(entry, False) or "closed"
        self._size -= 1
        self._entries.discard(entry)
        self._grant_free_slots()
        return reason

    # -- outside the lock ------------------------------------------------------------------

    def _withdraw(self, waiter: Waiter) -> None:
        """A wait that raised: leave the queue, or give back what was handed over.

        After a timeout or ``close()`` the waiter has left already and this does
        nothing. After an exception from outside (a ``KeyboardInterrupt`` in the
        main thread, say) it keeps the item or slot from being lost, and the
        waiters behind from queueing behind one that is gone.
        """
        with self._lock:
            if waiter.state != SERVED:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._notify_head()
                return
            if waiter.lease._entry is None:  # it was given a free slot
                self._size -= 1
                self._grant_free_slots()
                return
        self._release(waiter.lease, False)

    def _drop_stale(self, entry: Entry[T]) -> None:
        """An entry taken off the stack that must not be handed out: close it, free its slot."""
        with self._lock:
            reason = self._forget_stale(entry)
        self._dispose_stale([(entry, reason)])

    def _dispose_stale(self, stale: list[tuple[Entry[T], str]]) -> None:
        while stale:
            entry, reason = stale.pop()
            logger.debug("%r discarding %s item %r", self, reason, entry.obj)
            self._dispose(entry, reason)

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

    def _preload(self, n: int) -> None:
        made: list[Entry[T]] = []
        try:
            for _ in range(n):
                made.append(Entry(self.preload_resource(), self._gen, self._pid, self._now()))
        except BaseException:
            self._dispose_all(made, "closed")
            raise
        with self._lock:
            self._idle.extend(made)
            self._entries.update(made)
            self._size += len(made)
        logger.debug("%r preloaded %d", self, n)

    # -- small helpers ------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._timed else 0.0

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
