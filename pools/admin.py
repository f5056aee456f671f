"""Inspection and administration of a pool: counts, resize, close, prune, fork reset.

Mixed into :class:`pools.resource.ResourcePool`, which owns the state these
methods read and the helpers they call.
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
from pools.lease import CLOSED, Entry, Lease, Waiter
from pools.limits import check_limit

__all__ = ["PoolAdmin"]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")


class PoolAdmin(Generic[T]):
    """Counts, ``repr``, release by object, resize, force_close_all, close, prune."""

    _lock: threading.Lock
    _limit: int
    _size: int
    _idle: list[Entry[T]]
    _entries: set[Entry[T]]
    _waiters: collections.deque[Waiter]
    _gen: int
    _pid: int
    _closed: bool
    _timed: bool
    _clock: Callable[[], float]
    _take_idle: Callable[..., list[Entry[T]]]
    _grant_free_slots: Callable[[], None]
    _forget: Callable[[list[Entry[T]]], None]
    _expired: Callable[[Entry[T], float], bool]
    _dispose_all: Callable[[list[Entry[T]], str], None]
    _release: Callable[[Lease[T], bool], None]
    abandon_resource: Callable[[T], None]
    lease_class: ClassVar[type[Lease[Any]]]

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
            victims = [e for e in self._idle if self._expired(e, now)]
            self._idle = [e for e in self._idle if not self._expired(e, now)]
            self._forget(victims)
            self._size -= len(victims)
            self._grant_free_slots()
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
        if self._pid == os.getpid():
            return
        self._lock = threading.Lock()
        inherited = list(self._entries)
        self._idle = []
        self._entries = set()
        self._waiters = collections.deque()
        self._size = 0
        self._gen += 1
        self._pid = os.getpid()
        for entry in inherited:
            fork.abandon(self, entry.obj)
        self._after_fork()
        logger.debug("%r reset after fork (%d inherited items dropped)", self, len(inherited))

    def _after_fork(self) -> None:
        """Subclass hook run in the child after the generic reset."""
