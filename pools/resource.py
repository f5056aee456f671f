"""One generic bounded, thread-safe, fork-safe pool that the others build on.

:class:`ResourcePool` keeps *items* (connections, channels, producers) that
are expensive to make. Subclasses say how to create, check and dispose of an
item; the pool's rules live in :mod:`pools.decide` and this module is their
shell: it holds the lock, the clock and the waiting threads, runs each
decision under the lock and carries out what it returns after releasing it.

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
  given back and the next waiter is woken. Items are closed, and waiting
  threads woken, after the lock is released too.
* **No lock on the way in and out, under the GIL.** Taking an idle item and
  putting one back are single ``list.pop()`` / ``list.append()`` calls, which
  the GIL makes atomic, so a checkout never waits for another thread. Under the
  GIL a thread preempted while it holds a lock makes every other thread that
  wants that lock sleep in the kernel and then queue for the GIL again, one
  switch per hand-over (a lock convoy): with a lock on every checkout, 8
  threads sharing 8 items ran ten times slower than one. These two steps decide
  nothing: they compare with what the state published after its last decision
  (see :mod:`pools.decide`) and leave everything else to a decision under the
  lock. The protocol that lets lock-free returns and queueing waiters meet
  without losing a wake-up is in :mod:`pools.waiting`.
* **Free-threaded builds.** When ``sys._is_gil_enabled()`` is false at
  construction, the state publishes nothing for the lock-free steps, so every
  acquire and every return takes the lock and all decisions are ordered by it:
  correct, but without the lock-free speed. (If the interpreter turns the GIL
  back on later, the locked path stays correct.) The tests force this path.
* **Injected time.** The ``clock`` times idle and lifetime expiry, the
  fairness window and the deadline of a blocking ``acquire``; the
  ``gate_factory`` makes what a waiter sleeps on. A test with a fake clock and
  a fake gate runs every timeout without sleeping.
* **Fork safety.** After ``os.fork()`` the child forgets every item the parent
  made, without closing it, and starts empty (see :mod:`pools.fork`).

Logging goes to the ``broker.pool`` logger: DEBUG for creation, replacement,
disposal and waiting, INFO for resize, ``force_close_all`` and ``close``. The
plain hand-out and return of an idle item is not logged, to keep it cheap.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from broker.errors import ConfigurationError, LimitExceeded
from broker.instrumentation import hooks as instrumentation
from broker.timeouts import check_timeout
from pools.decide import SERVED, Entry, Outcome, Plan, PoolState
from pools.fork import PROCESS, abandon, register
from pools.lease import Lease, PoolClosed
from pools.limits import DEFAULT_LIMIT, PoolInUse, check_limit, check_seconds, get_limit
from pools.waiting import GateFactory, Waiter, closed_gate

__all__ = ["DEFAULT_LIMIT", "ResourcePool", "check_limit", "get_limit"]

T = TypeVar("T")

logger = logging.getLogger("broker.pool")

_INF = math.inf


def _gil_enabled() -> bool:
    # sys._is_gil_enabled exists from 3.13 on; before that the GIL is always on.
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


class ResourcePool(Generic[T]):
    """A bounded pool of items made by :meth:`create_resource`.

    Subclasses override the hooks (``create_resource``, ``dispose_resource``
    and optionally ``preload_resource``, ``check_out``, ``check_in``,
    ``is_broken_error``, ``abandon_resource``, ``after_fork``). Hooks run
    outside the lock.

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
        clock: the monotonic time source for expiry, the fairness window and
            the deadline of a blocking :meth:`acquire` (tests inject one).
        gate_factory: makes what a blocked :meth:`acquire` sleeps on (see
            :mod:`pools.waiting`; tests inject one driven by their clock).

    Raises:
        ConfigurationError: a bad ``limit``, ``preload`` or duration.
    """

    #: Raised by :meth:`acquire` when the limit is reached.
    LimitExceeded: ClassVar[type[LimitExceeded]] = LimitExceeded
    #: The lease type handed out by :meth:`acquire` (made with ``lease_class.maker``).
    lease_class: ClassVar[type[Lease[Any]]] = Lease
    #: Seconds the first waiter may be overtaken by running threads taking a
    #: just-returned item; after that returned items go to waiters in order.
    #: Read when the pool is made.
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
        gate_factory: GateFactory = closed_gate,
    ) -> None:
        n_limit = get_limit() if limit is None else check_limit(limit)
        n_preload = 0 if preload is None else preload
        if isinstance(n_preload, bool) or not isinstance(n_preload, int) or n_preload < 0:
            raise ConfigurationError(f"preload must be None or an int >= 0, got {preload!r}")
        if n_preload > n_limit:
            raise ConfigurationError(
                f"preload={n_preload} is larger than limit={n_limit}; "
                "preload at most as many items as the pool may hold"
            )
        idle_max = check_seconds(max_idle_time, "max_idle_time")
        life_max = check_seconds(max_lifetime, "max_lifetime")
        checked = check_seconds(verify_after, "verify_after", allow_zero=True)
        if checked is None:
            raise ConfigurationError("verify_after must be a number of seconds >= 0, got None")
        self._clock = clock
        self._gate_factory = gate_factory
        # Skip hook calls on the hot path when a subclass keeps the defaults.
        self._checks_in = type(self).check_in is not ResourcePool.check_in
        checks_out = type(self).check_out is not ResourcePool.check_out
        self._new_lease = self.lease_class.maker(self)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._state: PoolState[T, Waiter] = PoolState(
            n_limit,
            pid=self._pid,
            verify_after=checked if checks_out else None,
            max_idle_time=idle_max,
            max_lifetime=life_max,
            fairness_window=self.fairness_window,
            lock_free=_gil_enabled(),
        )
        # Whether checkouts and returns need the time even when no one waits.
        self._deadlines = self._state.deadlines
        register(self._reset_after_fork)
        if instrumentation.active is not None:
            instrumentation.active.pool_created(self)
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

    def after_fork(self) -> None:
        """Run in a forked child after the pool forgot the parent's items. Default: nothing."""

    # -- acquire --------------------------------------------------------------------

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
        if timeout is not None and not (
            (timeout.__class__ is float or timeout.__class__ is int) and timeout >= 0
        ):
            timeout = check_timeout(timeout)  # raises for nan, negatives, strings, bools
        # The fork hook keeps PROCESS.pid current, so this pid check costs no
        # system call (os.getpid() is one, and this is every checkout).
        if self._pid != PROCESS.pid:
            self._reset_after_fork()
        # Under the GIL a checkout takes no lock: it follows what the state
        # published after its last decision (see pools.decide) and leaves
        # anything else to a decision under the lock.
        state = self._state
        until = state.overtake_until
        now = self._clock() if self._deadlines or until != _INF else 0.0
        if now < until:  # no waiter is owed the next idle item yet
            try:
                entry = state.idle.pop()  # atomic: this entry is now ours alone
            except IndexError:
                entry, now = self._acquire_locked(block, timeout)
            else:
                if entry.gen != state.lend_gen:  # the pool changed under it
                    entry, now = self._acquire_locked(block, timeout, entry)
        else:
            entry, now = self._acquire_locked(block, timeout)
        # Past a deadline the state stamped on it, or torn down by
        # force_close_all() since it was picked (possible after a wait)?
        if entry.gen != state.gen or now > entry.expire_at:
            entry = self._replace(entry, "closed" if entry.gen != state.gen else "expired")
        elif now >= entry.probe_at:
            try:
                usable = self.check_out(entry.obj)
            except BaseException:
                self._checkin_locked(entry, True)
                raise
            if not usable:
                entry = self._replace(entry, "broken")
        return self._new_lease(entry)

    def _acquire_locked(
        self, block: bool, timeout: float | None, taken: Entry[T] | None = None
    ) -> tuple[Entry[T], float]:
        """A checkout the lock-free step could not do (``taken``: a stale entry it popped).

        Returns the entry to lend (made here if a slot was reserved) and the time.
        """
        now = self._clock()
        state = self._state
        waiter: Waiter | None = None
        decided: Plan[T, Waiter] | None = None
        try:
            with self._lock:
                decided = state.acquire(block, now, taken)
                if decided.outcome is Outcome.WAIT:
                    waiter = Waiter(self._gate_factory(), now)
                    state.enqueue(waiter, now, decided)
        finally:
            if decided is not None:  # (a stale entry may have been dropped)
                self._carry_out(decided)
        plan = decided
        if plan.outcome is Outcome.WAIT:
            assert waiter is not None
            try:
                plan = self._wait(waiter, timeout)
            except BaseException as exc:
                self._withdraw(waiter)
                if instrumentation.active is not None:
                    waited = self._clock() - waiter.since
                    instrumentation.active.pool_waited(self, waited, isinstance(exc, LimitExceeded))
                raise
            now = self._clock()
            if instrumentation.active is not None:
                instrumentation.active.pool_waited(self, now - waiter.since, False)
        outcome = plan.outcome
        if outcome is Outcome.LEND and plan.entry is not None:
            return plan.entry, now
        if outcome is Outcome.CREATE:
            return self._create(), now
        if outcome is Outcome.CLOSED:
            raise PoolClosed(f"{self!r} is closed; create a new pool")
        assert outcome is Outcome.LIMIT, plan
        raise self.LimitExceeded(self._limit_message())

    def _wait(self, waiter: Waiter, timeout: float | None) -> Plan[T, Waiter]:
        """Sleep until served, or until the deadline; the plan that ends the wait.

        A notified first waiter takes an idle item if one is still there (a
        running thread may have taken it within the fairness window); if not,
        it waits again, keeping its place at the head of the queue.
        """
        logger.debug("%r: waiting (timeout=%s)", self, timeout)
        clock, gate, state = self._clock, waiter.gate, self._state
        deadline = None if timeout is None else waiter.since + timeout
        while True:
            if deadline is None:
                opened = gate.acquire()
            else:
                remaining = deadline - clock()
                opened = remaining > 0 and gate.acquire(True, min(remaining, threading.TIMEOUT_MAX))
            # Re-arm before looking (see pools.waiting): a push after this line
            # notifies us again; one before it is seen by the look below.
            waiter.notified = False
            if waiter.state == SERVED:  # final: set under the lock before the gate opened
                return state.served(waiter)
            now = clock()
            with self._lock:
                plan = state.after_wake(waiter, opened, now)
            self._carry_out(plan)
            outcome = plan.outcome
            if outcome is Outcome.WAIT:
                continue
            if outcome is Outcome.TIMEOUT:
                logger.debug("%r: gave up waiting after %s s", self, timeout)
                raise self.LimitExceeded(f"{self._limit_message()} (waited {timeout} s)")
            if outcome is Outcome.CLOSED:
                raise PoolClosed(f"{self!r} was closed while waiting")
            return plan

    def _withdraw(self, waiter: Waiter) -> None:
        """A wait that raised: leave the queue, or give back what was handed over.

        After a timeout or ``close()`` the waiter has left already and this does
        nothing. After an exception from outside (a ``KeyboardInterrupt`` in the
        main thread, say) it keeps the item or slot from being lost, and the
        waiters behind from queueing behind one that is gone.
        """
        with self._lock:
            plan = self._state.withdraw(waiter)
        self._carry_out(plan)
        if plan.outcome is Outcome.GIVE_BACK and plan.entry is not None:
            self.checkin(plan.entry, False)

    def _replace(self, entry: Entry[T], reason: str) -> Entry[T]:
        """An entry picked for a caller may not be lent: dispose of it, make another in its slot."""
        logger.debug("%r replacing %s idle item %r", self, reason, entry.obj)
        with self._lock:
            plan = self._state.retire(entry, reason)
        self._carry_out(plan)
        return self._create()

    def _create(self) -> Entry[T]:
        """Fill a reserved slot; on failure give it back and wake the next waiter."""
        try:
            obj = self.create_resource()
        except BaseException:
            with self._lock:
                plan = self._state.creation_failed()
            self._carry_out(plan)
            raise
        with self._lock:
            plan = self._state.created(obj, self._clock())
        self._carry_out(plan)
        if plan.entry is None:
            raise PoolClosed(f"{self!r} was closed while an item was made")
        logger.debug("%r created %r", self, obj)
        return plan.entry

    # -- return ---------------------------------------------------------------------------

    def checkin(self, entry: Entry[T], broken: bool) -> None:
        """Take back the entry of a lease that ended (the lease contract, :class:`LeaseOwner`).

        Call ``lease.release()`` or :meth:`release` instead; this is what they call.
        """
        if broken or (self._checks_in and not self.check_in(entry.obj)):
            self._checkin_locked(entry, True)
            return
        # Under the GIL a plain return takes no lock either (see acquire).
        state = self._state
        if entry.gen == state.push_gen:  # (never true for an entry inherited across fork)
            until = state.overtake_until
            deadlines = self._deadlines
            now = self._clock() if deadlines or until != _INF else 0.0
            if now < until:  # no waiter is owed it yet
                if deadlines:
                    entry.idle_since = now
                    entry.probe_at = now + state.verify_delay
                state.idle.append(entry)
                # Push first, look second (see pools.waiting): a waiter that
                # queued before this look is told here; one that queues after
                # it finds the item when it looks.
                if entry.gen != state.lend_gen:  # the pool changed meanwhile
                    with self._lock:
                        plan = state.look_after_push(entry)
                    self._carry_out(plan)
                elif state.waiters:
                    self._notify_head(state)
                return
        self._checkin_locked(entry, False)

    @staticmethod
    def _notify_head(state: PoolState[T, Waiter]) -> None:
        """Tell the first waiter an item may be idle; needs no lock (see pools.waiting)."""
        try:
            head = state.waiters[0]
        except IndexError:
            return
        head.notify()

    def _checkin_locked(self, entry: Entry[T], broken: bool) -> None:
        now = self._clock()
        with self._lock:
            plan = self._state.check_in(entry, broken, now)
        self._carry_out(plan)

    def release(self, resource: Any) -> None:
        """Give back what :meth:`acquire` returned. Releasing twice is a no-op."""
        self._lease_of(resource).release()

    def discard(self, resource: Any) -> None:
        """Give back a lease as broken: its item is disposed of and the slot freed."""
        self._lease_of(resource).discard()

    def _lease_of(self, resource: Any) -> Lease[T]:
        if isinstance(resource, Lease):
            if resource.pool is not self:
                raise ConfigurationError(f"{resource!r} was not acquired from {self!r}")
            return resource
        raise ConfigurationError(
            f"release() takes what acquire() returned (a lease), got {resource!r}"
        )

    # -- counts -----------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The most items that may exist at once.

        Assignable, as in kombu: ``pool.limit = n`` is :meth:`set_limit` ``(n)``.
        """
        return self._state.limit

    @limit.setter
    def limit(self, limit: int) -> None:
        self.set_limit(limit)

    @property
    def in_use(self) -> int:
        """Items currently borrowed (including ones being created for a borrower)."""
        return self._state.in_use

    @property
    def idle(self) -> int:
        """Items in the pool, ready to be handed out."""
        return len(self._state.idle)

    @property
    def waiting(self) -> int:
        """Callers blocked in ``acquire()``."""
        return len(self._state.waiters)

    @property
    def is_closed(self) -> bool:
        """True after :meth:`close`."""
        return self._state.closed

    def __repr__(self) -> str:
        state = self._state
        closed = " closed" if state.closed else ""
        return (
            f"<{type(self).__name__} limit={state.limit} in_use={state.in_use} "
            f"idle={len(state.idle)} waiting={len(state.waiters)}{closed}>"
        )

    # -- administration -----------------------------------------------------------------

    def resize(self, limit: int) -> None:
        """Change the limit.

        Growing wakes waiters at once. Shrinking closes surplus idle items at
        once (least recently used first); if borrowed items alone exceed the
        new limit, each one returned is closed instead of kept until the pool
        fits, and nothing new is handed out meanwhile.

        Raises:
            ConfigurationError: ``limit`` is not a positive integer.
        """
        self.set_limit(limit, force=True)

    def set_limit(self, limit: int, force: bool = False) -> None:
        """Change the limit; unless ``force``, never below the items borrowed (kombu's rule).

        Without ``force``, a limit below :attr:`in_use` raises and changes
        nothing. With ``force`` it is :meth:`resize`: the borrowers keep their
        items, which are closed as they come back until the pool fits.

        Raises:
            PoolInUse: (a ``RuntimeError``) the limit is below :attr:`in_use`
                and ``force`` is false.
            ConfigurationError: ``limit`` is not a positive integer.
        """
        new = check_limit(limit)
        with self._lock:
            old = self._state.limit
            plan = self._state.resize(new, keep_borrowed=not force)
        if plan.outcome is Outcome.REFUSED:
            raise PoolInUse(
                f"{self!r}: cannot lower the limit from {old} to {new} below the "
                f"{self.in_use} items borrowed; release them first or pass force=True"
            )
        logger.info("%r resized from %d to %d (%d idle closed)", self, old, new, len(plan.dispose))
        self._carry_out(plan)

    def force_close_all(self) -> None:
        """Close every item, idle and borrowed; the pool stays usable.

        Idle items are closed gracefully. Borrowed ones are torn down at once
        (their holder gets an error on next use) and discarded when returned;
        their slots stay taken until then.
        """
        with self._lock:
            plan = self._state.force_close_all()
        forced = sum(reason == "forced" for _, reason in plan.dispose)
        logger.info(
            "%r force_close_all: %d idle, %d borrowed", self, len(plan.dispose) - forced, forced
        )
        self._carry_out(plan)

    def close(self) -> None:
        """Close the pool: idle items now, borrowed ones when they are returned.

        Waiters and later ``acquire()`` calls raise :class:`pools.PoolClosed`.
        Safe to call twice.
        """
        with self._lock:
            plan = self._state.close()
        if plan is None:
            return
        logger.info("%r closed (%d idle closed)", self, len(plan.dispose))
        self._carry_out(plan)

    def prune(self) -> int:
        """Close idle items past ``max_idle_time`` or ``max_lifetime`` now.

        Expired items are never handed out anyway; this only lets go of broker
        resources sooner (call it from a housekeeping timer). Returns the count.
        """
        now = self._clock()
        with self._lock:
            plan = self._state.prune(now)
        self._carry_out(plan)
        return len(plan.dispose)

    def invalidate(self) -> None:
        """Forget every item at once, for items that all died together.

        Idle items are dropped without being disposed of (whatever killed them
        freed them); borrowed ones are disposed of (``'closed'``) when they
        come back. For subclasses, e.g. a channel pool whose connection died.
        """
        with self._lock:
            plan = self._state.invalidate()
        self._carry_out(plan)

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
        pid = os.getpid()
        if self._pid == pid:
            return
        old = self._state
        self._lock = threading.Lock()
        self._state = old.successor(pid)
        self._pid = pid
        for entry in old.entries:
            abandon(self, entry.obj)
        self.after_fork()
        logger.debug("%r reset after fork (%d inherited items dropped)", self, len(old.entries))

    # -- carrying out plans (outside the lock) ------------------------------------------------

    def _carry_out(self, plan: Plan[T, Waiter]) -> None:
        """Do what a decision said, now that the lock is released."""
        for waiter in plan.wake:
            waiter.wake()
        if plan.notify is not None:
            plan.notify.notify()
        for entry, reason in plan.dispose:
            self._dispose(entry, reason)

    def _dispose(self, entry: Entry[T], reason: str) -> None:
        if entry.pid != os.getpid():
            abandon(self, entry.obj)  # made by the parent: never closed from here
            return
        logger.debug("%r discarding %s item %r", self, reason, entry.obj)
        self._dispose_obj(entry.obj, reason)

    def _dispose_obj(self, obj: T, reason: str) -> None:
        try:
            self.dispose_resource(obj, reason)
        except Exception:  # teardown must never break a release
            logger.debug("%r error disposing of %r", self, obj, exc_info=True)

    def _preload(self, n: int) -> None:
        made: list[T] = []
        try:
            for _ in range(n):
                made.append(self.preload_resource())
        except BaseException:
            for obj in made:
                self._dispose_obj(obj, "closed")
            raise
        with self._lock:
            self._state.preloaded(made, self._clock())
        logger.debug("%r preloaded %d", self, n)

    def _limit_message(self) -> str:
        return (
            f"{type(self).__name__} limit of {self.limit} reached ({self.in_use} in use); "
            "release one, pass block=True to wait, or raise the limit"
        )
