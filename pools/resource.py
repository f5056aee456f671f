"""One generic bounded, thread-safe, fork-safe pool that the others build on.

:class:`ResourcePool` keeps *items* (connections, channels, producers) that
are expensive to make. Subclasses say how to create, check and dispose of an
item; this module owns the bookkeeping:

* **Bounded.** At most ``limit`` items exist (idle + borrowed + being made).
* **LIFO idle stack.** The most recently returned item is handed out first:
  it is the one most likely to still be warm, and the cold ones gather at the
  bottom where :meth:`ResourcePool.prune` finds them.
* **FIFO waiters.** A caller that has to wait queues behind earlier waiters;
  a returned item (or a freed slot) goes straight to the first waiter, so a
  thread that just released cannot barge ahead of those already queued.
* **Decisions under the lock, I/O outside it.** A slot is reserved under the
  lock, the item is created after releasing it; if creation fails the slot is
  given back and the next waiter is woken.
* **Leases.** ``acquire()`` returns a :class:`Lease`, a thin proxy that
  forwards attribute access to the item, returns it on ``release()`` or at
  the end of a ``with`` block, and refuses use after release. A fresh lease
  per checkout makes a stale reference harmless: releasing it twice is a
  no-op, never a second return of someone else's item.
* **Fork safety.** After ``os.fork()`` the child forgets every item the parent
  made (without closing it: a close handshake on a shared socket would break
  the parent's connection) and starts empty.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from broker.errors import BrokerError, ConfigurationError, LimitExceeded

__all__ = [
    "DEFAULT_LIMIT",
    "Lease",
    "PoolClosed",
    "ResourcePool",
    "ResourceReleased",
    "get_limit",
]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")

#: The limit a pool gets when none is given (see :func:`get_limit`).
DEFAULT_LIMIT = 10

_default_limit = DEFAULT_LIMIT

# Bound once: a global lookup plus a C call is the cheapest pid check there is.
_getpid = os.getpid


class PoolClosed(BrokerError, RuntimeError):
    """The pool was closed with :meth:`ResourcePool.close`; it hands out nothing more.

    Also a :class:`RuntimeError`, which is what kombu raised here.
    """


class ResourceReleased(BrokerError, RuntimeError):
    """A lease was used after it was released back to its pool."""


def get_limit() -> int:
    """The limit used by pools created with ``limit=None`` (10 unless changed).

    Change it with :func:`pools.set_limit`.
    """
    return _default_limit


def _set_default_limit(limit: int) -> None:
    global _default_limit
    _default_limit = limit


def check_limit(value: object, key: str = "limit") -> int:
    """Validate a pool size: a positive ``int`` (pools are never unbounded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{key} must be a positive integer (pools are always bounded), got {value!r}"
        )
    return value


def _check_seconds(value: object, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{key} must be None or a number of seconds > 0, got {value!r}")
    return float(value)


class _Entry(Generic[T]):
    """One item plus the facts the pool keeps about it."""

    __slots__ = ("created", "gen", "idle_since", "obj", "pid")

    def __init__(self, obj: T, gen: int, pid: int, created: float) -> None:
        self.obj = obj
        self.gen = gen  # pool generation at creation; force_close_all bumps it
        self.pid = pid  # process that made it; another process must never close it
        self.created = created
        self.idle_since = created


_WAITING, _SERVED, _CLOSED = 0, 1, 2


class _Waiter:
    """A queued acquirer. ``gate`` is held until a releaser serves this waiter."""

    __slots__ = ("gate", "lease", "state")

    def __init__(self, lease: Lease[Any]) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()
        self.lease = lease
        self.state = _WAITING


class Lease(Generic[T]):
    """One checkout of one pooled item.

    Attribute access is forwarded to the item, so a lease of a connection is
    used like the connection (``lease.default_channel``) and a lease of a
    channel like the channel (``lease.basic_publish(...)``). ``with
    pool.acquire() as x:`` binds the lease itself, so ``x.release()`` means
    "give it back" everywhere. An exception that the pool recognises as
    breaking the item (a connection error for a connection) makes the pool
    dispose of the item instead of reusing it.

    After release every forwarded access raises :class:`ResourceReleased`;
    :attr:`resource` gives the underlying object while the lease is held.
    """

    __slots__ = ("_entry", "_obj", "_pool")

    def __init__(self, pool: ResourcePool[T]) -> None:
        self._pool = pool
        self._entry: _Entry[T] | None = None
        self._obj: T | None = None

    @property
    def resource(self) -> T:
        """The pooled object itself (for ``isinstance`` checks or APIs wanting the real type)."""
        obj = self._obj
        if obj is None:
            raise ResourceReleased(f"{self!r} was released; acquire a new one from the pool")
        return obj

    @property
    def is_released(self) -> bool:
        """True once the item went back to the pool (or was discarded)."""
        return self._obj is None

    def release(self) -> None:
        """Return the item to the pool. A second call does nothing."""
        self._pool._release(self, False)

    def discard(self) -> None:
        """Return the item as broken: the pool disposes of it and frees its slot."""
        self._pool._release(self, True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        pool._release(self, exc is not None and pool.is_broken_error(exc))

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, so the lease's own methods
        # stay fast; dunders are not forwarded (copy/pickle probe for them).
        if name[:2] == "__":
            raise AttributeError(name)
        obj = self._obj
        if obj is None:
            raise ResourceReleased(
                f"cannot use {name!r}: {self!r} was released; acquire a new one from the pool"
            )
        return getattr(obj, name)

    def __repr__(self) -> str:
        state = "released" if self._obj is None else f"of {self._obj!r}"
        return f"<{type(self).__name__} {state}>"


class ResourcePool(Generic[T]):
    """A bounded pool of items made by :meth:`create_resource`.

    Subclasses override the hooks (``create_resource``, ``dispose_resource``
    and optionally ``check_out``, ``check_in``, ``is_broken_error``,
    ``abandon_resource``). The hooks run outside the pool's lock.

    Args:
        limit: the most items that may exist at once; ``None`` means
            :func:`get_limit` at construction time. Always bounded.
        preload: how many items to create now, in the constructor (their I/O
            happens here and its errors propagate); the rest are made on demand.
        max_idle_time: seconds an item may sit idle before it is closed instead
            of handed out; ``None`` keeps idle items forever.
        max_lifetime: seconds after creation when an item is retired (closed
            on its next checkout or return); ``None`` for no limit.
        clock: monotonic time source, injectable for tests.

    Raises:
        ConfigurationError: a bad ``limit``, ``preload`` or duration.
    """

    #: Raised by :meth:`acquire` when the limit is reached.
    LimitExceeded: ClassVar[type[LimitExceeded]] = LimitExceeded
    #: The lease type handed out by :meth:`acquire`.
    lease_class: ClassVar[type[Lease[Any]]] = Lease

    def __init__(
        self,
        limit: int | None = None,
        *,
        preload: int | None = None,
        max_idle_time: float | None = None,
        max_lifetime: float | None = None,
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
        self._max_idle_time = _check_seconds(max_idle_time, "max_idle_time")
        self._max_lifetime = _check_seconds(max_lifetime, "max_lifetime")
        self._timed = self._max_idle_time is not None or self._max_lifetime is not None
        self._clock = clock
        # Skip the hook calls on the hot path when a subclass keeps the defaults.
        self._checks_out = type(self).check_out is not ResourcePool.check_out
        self._checks_in = type(self).check_in is not ResourcePool.check_in
        self._lock = threading.Lock()
        self._idle: list[_Entry[T]] = []
        self._borrowed: set[Lease[T]] = set()
        self._in_use = 0  # borrowed + handed to a waiter + slots reserved for creation
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._gen = 0
        self._closed = False
        self._pid = _getpid()
        _live_pools.add(self)
        if n_preload:
            self._preload(n_preload)

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> T:
        """Make a new item (may do I/O; runs outside the lock)."""
        raise NotImplementedError

    def dispose_resource(self, obj: T, reason: str) -> None:
        """Get rid of an item the pool no longer keeps (runs outside the lock).

        ``reason`` is ``'broken'`` (failed a check or raised a breaking error:
        tear down fast), ``'forced'`` (borrowed when :meth:`force_close_all`
        ran), or a graceful reason: ``'expired'``, ``'idle'``, ``'shrink'``,
        ``'closed'``.
        """

    def preload_resource(self) -> T:
        """Make an item for ``preload`` (default: :meth:`create_resource`)."""
        return self.create_resource()

    def check_out(self, obj: T) -> bool:
        """Whether an idle item is still usable (non-blocking). Default: True."""
        return True

    def check_in(self, obj: T) -> bool:
        """Whether a returned item may be reused. Default: True."""
        return True

    def is_broken_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` raised inside a ``with`` block means the item is broken."""
        return False

    def abandon_resource(self, obj: T) -> None:
        """Forget an item inherited from the parent process (no I/O). Default: nothing."""

    # -- public API -----------------------------------------------------------

    @property
    def limit(self) -> int:
        """The most items that may exist at once."""
        return self._limit

    @property
    def in_use(self) -> int:
        """Items currently borrowed (including ones being created for a borrower)."""
        return self._in_use

    @property
    def idle(self) -> int:
        """Items waiting in the pool, ready to be handed out."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Callers blocked in :meth:`acquire`."""
        return len(self._waiters)

    @property
    def is_closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

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
        if self._pid != _getpid():
            self._reset_after_fork()
        lease = self.lease_class(self)
        with self._lock:
            if self._closed:
                raise PoolClosed(f"{self!r} is closed; create a new pool")
            idle = self._idle
            if idle:
                entry: _Entry[T] | None = idle.pop()
                self._in_use += 1
                self._borrowed.add(lease)
                lease._entry = entry
            else:
                entry = None
                waiter = self._reserve_or_queue(lease, block, timeout)
        if entry is not None:  # the fast path: an idle item, checked outside the lock
            if self._timed or self._checks_out:
                entry = self._checked(lease, entry)
            lease._obj = entry.obj
            return lease
        if waiter is None:  # a free slot was reserved for us
            lease._obj = self._create_for(lease).obj
            return lease
        handed = self._wait(waiter, timeout)
        if handed is None:  # a slot was freed for us
            handed = self._create_for(lease)
        elif self._timed:  # handed over by a releaser, which already checked it
            handed = self._checked(lease, handed)
        lease._obj = handed.obj
        return lease

    def release(self, resource: Any) -> None:
        """Give back a lease (or the object it wraps). Releasing twice is a no-op."""
        self._release(self._lease_of(resource), False)

    def discard(self, resource: Any) -> None:
        """Give back a lease as broken: its item is disposed of and the slot freed."""
        self._release(self._lease_of(resource), True)

    def resize(self, limit: int) -> None:
        """Change the limit.

        Growing wakes waiters at once. Shrinking closes surplus idle items at
        once (the least recently used first); if borrowed items alone exceed the
        new limit, each one returned is closed instead of kept until the pool
        fits, and no new item is handed out meanwhile.
        """
        new = check_limit(limit)
        with self._lock:
            old = self._limit
            self._limit = new
            excess = self._in_use + len(self._idle) - new
            victims: list[_Entry[T]] = []
            if excess > 0:
                victims = self._idle[:excess]
                del self._idle[:excess]
            else:
                self._grant_free_slots()
        logger.info("%r resized from %d to %d (%d idle closed)", self, old, new, len(victims))
        self._dispose_all(victims, "shrink")

    def force_close_all(self) -> None:
        """Close every item, idle and borrowed; the pool stays usable.

        Idle items are closed gracefully; borrowed ones are torn down at once
        (their holder gets an error on next use) and discarded when returned.
        """
        with self._lock:
            self._gen += 1
            idle = self._idle
            self._idle = []
            borrowed = [lease._entry for lease in self._borrowed if lease._entry is not None]
        logger.info(
            "%r force_close_all: closing %d idle and %d borrowed", self, len(idle), len(borrowed)
        )
        self._dispose_all(idle, "closed")
        self._dispose_all(borrowed, "forced")

    def close(self) -> None:
        """Close the pool: idle items now, borrowed ones when they are returned.

        Waiters and later :meth:`acquire` calls get :class:`PoolClosed`. Safe to
        call twice.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._gen += 1
            idle = self._idle
            self._idle = []
            waiters = self._waiters
            self._waiters = collections.deque()
            for waiter in waiters:
                waiter.state = _CLOSED
                waiter.gate.release()
        logger.info("%r closed (%d idle closed)", self, len(idle))
        self._dispose_all(idle, "closed")

    def prune(self) -> int:
        """Close idle items past ``max_idle_time`` or ``max_lifetime`` now.

        Expired items are also skipped on checkout, so calling this is only
        needed to let go of broker resources sooner. Returns how many were closed.
        """
        if not self._timed:
            return 0
        now = self._clock()
        with self._lock:
            keep: list[_Entry[T]] = []
            victims: list[_Entry[T]] = []
            for entry in self._idle:
                (victims if self._expired(entry, now) else keep).append(entry)
            self._idle = keep
            if victims:
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

    def __repr__(self) -> str:
        closed = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} limit={self._limit} in_use={self._in_use} "
            f"idle={len(self._idle)} waiting={len(self._waiters)}{closed}>"
        )

    # -- internals ------------------------------------------------------------

    def _limit_message(self) -> str:
        return (
            f"{type(self).__name__} limit of {self._limit} reached ({self._in_use} in use); "
            "release one, pass block=True to wait, or raise the limit"
        )

    def _new_entry(self, obj: T) -> _Entry[T]:
        return _Entry(obj, self._gen, _getpid(), self._clock() if self._timed else 0.0)

    def _preload(self, n: int) -> None:
        made: list[_Entry[T]] = []
        try:
            for _ in range(n):
                made.append(self._new_entry(self.preload_resource()))
        except BaseException:
            self._dispose_all(made, "closed")
            raise
        with self._lock:
            self._idle.extend(made)
        logger.debug("%r preloaded %d", self, n)

    def _reserve_or_queue(
        self, lease: Lease[T], block: bool, timeout: float | None
    ) -> _Waiter | None:
        """Under the lock, no idle item: reserve a free slot (None) or queue a waiter."""
        if self._in_use < self._limit:
            self._in_use += 1
            self._borrowed.add(lease)
            return None
        if not block:
            raise self.LimitExceeded(self._limit_message())
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise ConfigurationError(
                f"timeout must be None or a number of seconds >= 0, got {timeout!r}"
            )
        waiter = _Waiter(lease)
        self._waiters.append(waiter)
        return waiter

    def _wait(self, waiter: _Waiter, timeout: float | None) -> _Entry[T] | None:
        """Block until served; return the handed-over entry or None (make one)."""
        if timeout is None:
            served = waiter.gate.acquire()
        else:
            served = (
                waiter.gate.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))
                if timeout > 0
                else False
            )
        if not served:
            with self._lock:
                if waiter.state == _WAITING:
                    self._waiters.remove(waiter)
                    raise self.LimitExceeded(self._limit_message() + f" (waited {timeout} s)")
            # Served while the timeout fired: take what was handed over.
        if waiter.state == _CLOSED:
            raise PoolClosed(f"{self!r} was closed while waiting")
        return waiter.lease._entry

    def _create_for(self, lease: Lease[T]) -> _Entry[T]:
        """Fill a reserved slot; on failure give it back and wake the next waiter."""
        try:
            entry = self._new_entry(self.create_resource())
        except BaseException:
            with self._lock:
                self._borrowed.discard(lease)
                self._in_use -= 1
                self._grant_free_slots()
            raise
        lease._entry = entry
        logger.debug("%r created %r", self, entry.obj)
        return entry

    def _checked(self, lease: Lease[T], entry: _Entry[T]) -> _Entry[T]:
        """Checkout check of an idle item; replace it in the same slot if it fails."""
        reason = None
        if self._timed and self._expired(entry, self._clock()):
            reason = "expired"
        elif not self.check_out(entry.obj):
            reason = "broken"
        if reason is None:
            return entry
        logger.debug("%r replacing %s idle item %r", self, reason, entry.obj)
        lease._entry = None
        self._dispose(entry, reason)
        return self._create_for(lease)

    def _expired(self, entry: _Entry[T], now: float) -> bool:
        idle_max, life_max = self._max_idle_time, self._max_lifetime
        return (idle_max is not None and now - entry.idle_since > idle_max) or (
            life_max is not None and now - entry.created > life_max
        )

    def _release(self, lease: Lease[T], broken: bool) -> None:
        entry = lease._entry
        if entry is None or lease._obj is None:
            return  # already released (e.g. release() inside a with block)
        if self._checks_in and not broken and not self.check_in(entry.obj):
            broken = True
        with self._lock:
            if lease._entry is not entry:
                return  # lost a race with another release of the same lease
            lease._entry = None
            lease._obj = None
            self._borrowed.discard(lease)
            idle = self._idle
            # close(), force_close_all() and a fork reset all bump the
            # generation, so one comparison covers them on the hot path.
            if (
                broken
                or entry.gen != self._gen
                or self._waiters
                or self._timed
                or self._in_use + len(idle) > self._limit
            ):
                reason, victims = self._checkin_slow(entry, broken)
            else:
                self._in_use -= 1
                idle.append(entry)
                return
        if reason is not None:
            logger.debug("%r discarding %s item %r", self, reason, entry.obj)
            self._dispose(entry, reason)
        if victims:
            self._dispose_all(victims, "idle")

    def _checkin_slow(self, entry: _Entry[T], broken: bool) -> tuple[str | None, list[_Entry[T]]]:
        """Under the lock: every return that is not a plain push onto the idle stack.

        Returns why the entry must be disposed of (or None if it was kept or
        handed to a waiter) and idle entries that expired meanwhile.
        """
        victims: list[_Entry[T]] = []
        if entry.pid != self._pid:
            # Inherited across fork; the reset already forgot it and its slot.
            _abandon(self, entry)
            return None, victims
        now = self._clock() if self._timed else 0.0
        reason = None
        if broken:
            reason = "broken"
        elif self._closed or entry.gen != self._gen:
            reason = "closed"
        elif self._in_use + len(self._idle) > self._limit:
            reason = "shrink"
        elif self._timed and self._expired(entry, now):
            reason = "expired"
        if reason is not None:
            self._in_use -= 1
            self._grant_free_slots()
        elif self._waiters:
            waiter = self._waiters.popleft()
            waiter.lease._entry = entry
            self._borrowed.add(waiter.lease)
            waiter.state = _SERVED
            waiter.gate.release()
        else:
            self._in_use -= 1
            entry.idle_since = now
            idle = self._idle
            idle.append(entry)
            # The stack is ordered by idle_since: stale items sit at the bottom.
            max_idle = self._max_idle_time
            if max_idle is not None:
                while idle and now - idle[0].idle_since > max_idle:
                    victims.append(idle.pop(0))
        return reason, victims

    def _grant_free_slots(self) -> None:
        """Under the lock: let waiters create items in any free slot, first come first."""
        waiters = self._waiters
        while waiters and self._in_use + len(self._idle) < self._limit:
            waiter = waiters.popleft()
            self._in_use += 1
            self._borrowed.add(waiter.lease)
            waiter.state = _SERVED
            waiter.gate.release()

    def _lease_of(self, resource: Any) -> Lease[T]:
        if isinstance(resource, Lease):
            if resource._pool is not self:
                raise ConfigurationError(f"{resource!r} was not acquired from {self!r}")
            return resource
        with self._lock:
            for lease in self._borrowed:
                if lease._obj is resource:
                    return lease
        # Unknown object: already released, or never ours. Releasing twice is a no-op.
        dead: Lease[T] = self.lease_class(self)
        return dead

    def _dispose(self, entry: _Entry[T], reason: str) -> None:
        if entry.pid != _getpid():
            _abandon(self, entry)
            return
        try:
            self.dispose_resource(entry.obj, reason)
        except Exception:  # teardown must never break a release
            logger.debug("%r error disposing of %r", self, entry.obj, exc_info=True)

    def _dispose_all(self, entries: list[_Entry[T]], reason: str) -> None:
        for entry in entries:
            self._dispose(entry, reason)

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's items and start empty.

        The old lock may have been held by a parent thread at fork time, so it
        is replaced, never acquired.
        """
        if self._pid == _getpid():
            return
        self._lock = threading.Lock()
        inherited = self._idle + [lease._entry for lease in self._borrowed if lease._entry]
        self._idle = []
        self._borrowed = set()
        self._waiters = collections.deque()
        self._in_use = 0
        self._gen += 1
        self._pid = _getpid()
        for entry in inherited:
            _abandon(self, entry)
        self._after_fork()
        logger.debug("%r reset after fork (%d inherited items dropped)", self, len(inherited))

    def _after_fork(self) -> None:
        """Subclass hook run in the child after the generic reset."""


# Items inherited across fork are kept referenced here so that no finalizer
# can ever run a close handshake on a socket the parent still uses; their file
# descriptors go away when the child exits.
_inherited: list[object] = []

_live_pools: weakref.WeakSet[ResourcePool[Any]] = weakref.WeakSet()


def _abandon(pool: ResourcePool[Any], entry: _Entry[Any]) -> None:
    _inherited.append(entry.obj)
    try:
        pool.abandon_resource(entry.obj)
    except Exception:
        logger.debug("%r error abandoning %r", pool, entry.obj, exc_info=True)


def _reset_all_after_fork() -> None:
    for pool in list(_live_pools):
        pool._reset_after_fork()


os.register_at_fork(after_in_child=_reset_all_after_fork)
