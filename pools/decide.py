"""The pool's decisions: one state, and the pure steps that change it.

:class:`PoolState` is everything a pool knows: its limit, the slots taken,
the idle stack, the live entries, the queue of waiters, its generation and
whether it is closed. Each of its public methods is one decision: it takes
the state and one event (a checkout, a return, a wake-up, a resize ...)
together with the time it happened, updates the state, and returns what the
caller must do about it: a :class:`Plan` (lend this entry, create an item in
the slot reserved for you, wait, give up; dispose of these entries, wake these
waiters). Nothing here does I/O, starts or blocks a thread, or reads a clock.
The shell, :class:`pools.resource.ResourcePool`, takes its lock, calls one
decision, releases the lock and then carries the plan out, so that creating
and closing items and waking threads never happen under the lock (the model is
httpcore's ``_assign_requests_to_connections``).

The hot path takes no lock under the GIL: a checkout pops the top idle entry
and a return pushes one (single ``list.pop()`` / ``list.append()`` calls, which
the GIL makes atomic). Those steps decide nothing themselves: after every
decision the state *publishes* what they need, and they only compare with it
(see :meth:`PoolState.publish`):

* ``overtake_until``: until when a running caller may still take an idle entry
  ahead of the first waiter (the fairness window); ``inf`` when no one waits,
  ``-inf`` when the lock-free steps are off;
* ``lend_gen`` / ``push_gen``: the generation an entry must carry to be lent /
  pushed without the lock (``-1``, which no entry carries, when none may be:
  the pool is over its limit after a shrink, or returns must be trimmed);
* each idle entry's ``probe_at`` and ``expire_at``: from when it must be
  probed (``check_out``) before it is lent again, and after when it may not
  be lent at all; ``verify_delay`` makes ``probe_at`` for an entry pushed
  without the lock.

Whatever does not match goes to a decision under the lock. The state is written
so that the lock-free steps may run at any moment: an entry leaves the idle
stack only through an atomic ``pop()`` or ``remove()``, which either gets it
(and then it is the caller's alone) or fails because someone else got it
first. How a lock-free return and a waiter queueing under the lock never lose
a wake-up is described in :mod:`pools.waiting`. Without the GIL (a
free-threaded build) nothing is published for the lock-free steps
(``lock_free=False``), so every acquire and every return decides under the
lock.
"""

from __future__ import annotations

import collections
import enum
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

__all__ = [
    "CLOSED",
    "SERVED",
    "WAITING",
    "Entry",
    "Outcome",
    "Plan",
    "PoolState",
    "Ticket",
]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


class Entry(Generic[T]):
    """One item plus the facts the pool keeps about it."""

    __slots__ = ("created", "expire_at", "gen", "idle_since", "obj", "pid", "probe_at")

    def __init__(self, obj: T, gen: int, pid: int, created: float) -> None:
        self.obj = obj
        self.gen = gen  # pool generation at creation; close/force_close_all/fork bump it
        self.pid = pid  # process that made it; no other process may ever close it
        self.created = created
        self.idle_since = created
        # Deadlines set whenever the entry goes idle (PoolState._rest): from
        # probe_at on it is probed before it is lent; after expire_at it is
        # replaced instead (idle too long, or too old). Never reached in pools
        # that do not probe or expire.
        self.probe_at = math.inf
        self.expire_at = math.inf

    def __repr__(self) -> str:
        return f"<Entry {self.obj!r} gen={self.gen}>"


# Ticket states. SERVED: given an entry or a free slot. CLOSED: the pool
# closed. Both are final and set under the pool lock.
WAITING, SERVED, CLOSED = 0, 1, 2


class Ticket:
    """A caller's place in the queue of waiters, as the decisions see it.

    ``since`` is when it queued (the fairness window counts from there);
    ``state`` and ``entry`` are written by the decisions only, ``entry``
    first, so that whoever reads ``state == SERVED`` finds the entry too.
    """

    __slots__ = ("entry", "since", "state")

    def __init__(self, since: float) -> None:
        self.since = since
        self.state = WAITING
        self.entry: Entry[Any] | None = None

    def serve(self, entry: Entry[Any] | None) -> None:
        """Give this ticket an entry, or (``None``) a slot to create one in."""
        self.entry = entry
        self.state = SERVED

    def turn_away(self) -> None:
        """The pool closed while this ticket waited."""
        self.state = CLOSED


W = TypeVar("W", bound=Ticket)


class Outcome(enum.Enum):
    """What a decision says the caller itself gets."""

    NOTHING = "nothing"  # an administrative event: only the side effects matter
    LEND = "lend"  # take ``Plan.entry`` (probe or replace it if past its deadlines)
    CREATE = "create"  # a slot is reserved for the caller: make an item in it
    WAIT = "wait"  # queued: sleep until woken or the deadline passes
    LIMIT = "limit"  # the limit is reached and the caller does not wait
    TIMEOUT = "timeout"  # waited until the deadline; left the queue
    CLOSED = "closed"  # the pool is closed
    GIVE_BACK = "give back"  # a withdrawn waiter owned ``Plan.entry``: return it
    REFUSED = "refused"  # a new limit below the entries borrowed: nothing changed


class Plan(Generic[T, W]):
    """What the caller does once the lock is released.

    ``outcome`` (with ``entry``) is for the caller; ``wake``
    are tickets whose state became final (open their gates), ``notify`` the
    first waiter, to be told an item may be idle, and ``dispose`` the entries
    the pool let go of, each with the reason passed to ``dispose_resource``.
    """

    __slots__ = ("dispose", "entry", "notify", "outcome", "wake")

    def __init__(self) -> None:
        self.outcome = Outcome.NOTHING
        self.entry: Entry[T] | None = None
        self.dispose: list[tuple[Entry[T], str]] = []
        self.wake: list[W] = []
        self.notify: W | None = None

    def __repr__(self) -> str:
        return (
            f"<Plan {self.outcome.value} entry={self.entry!r} "
            f"dispose={len(self.dispose)} wake={len(self.wake)}>"
        )


S = TypeVar("S", bound="PoolState[Any, Any]")


def _publishes(decision: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Mark a decision that changes the state: it ends with :meth:`PoolState.publish`."""

    @functools.wraps(decision)
    def decide_and_publish(state: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        outcome = decision(state, *args, **kwargs)
        state.publish()
        return outcome

    return decide_and_publish


class PoolState(Generic[T, W]):
    """A pool's books and its decisions.

    Args:
        limit: the most items that may exist at once.
        pid: the process this state belongs to (entries made elsewhere are foreign).
        verify_after: an idle entry is probed on checkout once it has been idle
            this long; ``None``: never (the pool has no probe).
        max_idle_time: seconds an entry may sit idle; ``None``: forever.
        max_lifetime: seconds after creation when an entry is retired; ``None``: never.
        fairness_window: seconds the first waiter may be overtaken by running
            callers taking a just-returned entry.
        lock_free: whether checkouts and returns may skip the lock when the
            published values allow it (true only under the GIL).
        gen: the first generation (a forked child continues its parent's).
        closed: whether the pool starts closed (a child of a closed pool).
    """

    __slots__ = (
        "closed",
        "deadlines",
        "entries",
        "fairness_window",
        "gen",
        "idle",
        "lend_gen",
        "limit",
        "lock_free",
        "max_idle_time",
        "max_lifetime",
        "overtake_until",
        "pid",
        "push_gen",
        "size",
        "timed",
        "verify_after",
        "verify_delay",
        "waiters",
    )

    def __init__(
        self,
        limit: int,
        *,
        pid: int,
        verify_after: float | None = None,
        max_idle_time: float | None = None,
        max_lifetime: float | None = None,
        fairness_window: float = 0.0,
        lock_free: bool = True,
        gen: int = 0,
        closed: bool = False,
    ) -> None:
        self.limit = limit
        # Slots taken: idle + borrowed + reserved for creation. in_use is
        # size - len(idle), so the hot path touches no counter at all.
        self.size = 0
        self.idle: list[Entry[T]] = []  # a stack: the top is the most recently returned
        self.entries: set[Entry[T]] = set()  # every live entry, idle or borrowed
        self.waiters: collections.deque[W] = collections.deque()
        self.gen = gen
        self.closed = closed
        self.pid = pid
        self.verify_after = verify_after
        self.max_idle_time = max_idle_time
        self.max_lifetime = max_lifetime
        self.fairness_window = fairness_window
        self.lock_free = lock_free
        self.timed = max_idle_time is not None or max_lifetime is not None
        # Whether entries ever get deadlines (see Entry.probe_at): only then do
        # lending and returning need the time when no one waits.
        self.deadlines = verify_after is not None or self.timed
        # An entry pushed without the lock at t is probed from t + verify_delay
        # (pools that expire entries never push without the lock).
        self.verify_delay = math.inf if verify_after is None else verify_after
        self.overtake_until = -math.inf
        self.lend_gen = self.push_gen = -1
        self.publish()

    def successor(self, pid: int) -> PoolState[T, W]:
        """The empty state of a forked child: same settings, next generation."""
        return PoolState(
            self.limit,
            pid=pid,
            verify_after=self.verify_after,
            max_idle_time=self.max_idle_time,
            max_lifetime=self.max_lifetime,
            fairness_window=self.fairness_window,
            lock_free=self.lock_free,
            gen=self.gen + 1,
            closed=self.closed,
        )

    @property
    def in_use(self) -> int:
        """Entries borrowed or being created (slots taken but not idle)."""
        return self.size - len(self.idle)

    def __repr__(self) -> str:
        closed = " closed" if self.closed else ""
        return (
            f"<PoolState limit={self.limit} size={self.size} idle={len(self.idle)} "
            f"waiting={len(self.waiters)} gen={self.gen}{closed}>"
        )

    # -- for the lock-free steps (see the module docstring) ------------------------------

    def publish(self) -> None:
        """Work out what the lock-free checkout and return may do until the next decision.

        Every decision that changes the state ends with this (see
        ``_publishes``); the lock-free steps read the result.
        """
        if not self.lock_free:
            return  # (-inf and -1 from the start: every step takes the lock)
        waiters = self.waiters
        self.overtake_until = waiters[0].since + self.fairness_window if waiters else math.inf
        # Over the limit (a shrink with items out), nothing is lent or kept
        # without a look under the lock; pools that expire entries trim the
        # stack on every return, which needs the lock too.
        fits = self.size <= self.limit
        self.lend_gen = self.gen if fits else -1
        self.push_gen = self.gen if fits and not self.timed else -1

    # -- under the lock: checkout ------------------------------------------------------

    @_publishes
    def acquire(self, block: bool, now: float, taken: Entry[T] | None = None) -> Plan[T, W]:
        """Checkout that the lock-free step could not do: take, reserve, or wait.

        ``taken`` is an entry the lock-free step popped but could not lend (it
        did not carry ``lend_gen``): it is dropped. Outcomes: ``LEND``,
        ``CREATE`` (a slot is reserved), ``LIMIT`` (with ``block`` false),
        ``CLOSED``, or ``WAIT``: the caller should queue with :meth:`enqueue`
        in the same locked section.
        """
        plan: Plan[T, W] = Plan()
        if taken is not None:
            self._forget(taken, self._unfit(taken, False) or "closed", plan)
        if self.closed:
            plan.outcome = Outcome.CLOSED
            return plan
        self._take_idle(None, plan, now)
        if plan.outcome is Outcome.LEND:
            return plan
        if self.size < self.limit:
            self.size += 1
            plan.outcome = Outcome.CREATE
        else:
            plan.outcome = Outcome.WAIT if block else Outcome.LIMIT
        return plan

    @_publishes
    def enqueue(self, waiter: W, now: float, plan: Plan[T, W]) -> None:
        """Queue ``waiter`` (after :meth:`acquire` said ``WAIT``), then look once more.

        Queue first, look second (see :mod:`pools.waiting`): an entry pushed
        before the waiter was queued was announced to no one. Updates ``plan``.
        """
        self.waiters.append(waiter)
        self._take_idle(waiter, plan, now)
        if waiter.state == SERVED:
            self.served(waiter, plan)
        else:
            plan.outcome = Outcome.WAIT
            self._notify_head(plan)

    @_publishes
    def after_wake(self, waiter: W, opened: bool, now: float) -> Plan[T, W]:
        """A waiter's gate opened (``opened``) or its deadline passed: what now.

        Outcomes: ``LEND``/``CREATE`` (served, or took an idle entry as the
        first waiter), ``WAIT`` again (woken, but the entry was taken first),
        ``TIMEOUT`` (it left the queue) or ``CLOSED``.
        """
        plan: Plan[T, W] = Plan()
        if waiter.state == CLOSED:
            plan.outcome = Outcome.CLOSED
            return plan
        self._take_idle(waiter, plan, now)
        if waiter.state == SERVED:
            self.served(waiter, plan)
        elif opened:
            plan.outcome = Outcome.WAIT
        else:
            self.waiters.remove(waiter)
            self._notify_head(plan)
            plan.outcome = Outcome.TIMEOUT
        return plan

    def served(self, waiter: W, plan: Plan[T, W] | None = None) -> Plan[T, W]:
        """The outcome of a served ticket. Reads only final fields: needs no lock."""
        if plan is None:
            plan = Plan()
        entry = waiter.entry
        if entry is None:
            plan.outcome = Outcome.CREATE
        else:
            self._lend(entry, plan)
        return plan

    @_publishes
    def withdraw(self, waiter: W) -> Plan[T, W]:
        """A wait ended by an exception from outside: leave no trace of the waiter.

        After a timeout or close() it has left already and this only tells
        the next waiter; a slot it was given is freed; an entry it was given
        comes back as ``GIVE_BACK``, for the caller to return like any other.
        """
        plan: Plan[T, W] = Plan()
        if waiter.state != SERVED:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            self._notify_head(plan)
        elif waiter.entry is None:
            self.size -= 1
            self._grant_free_slots(plan)
        else:
            plan.outcome = Outcome.GIVE_BACK
            plan.entry = waiter.entry
        return plan

    @_publishes
    def retire(self, entry: Entry[T], reason: str) -> Plan[T, W]:
        """An entry picked for a caller may not be lent: drop it, keep its slot.

        The caller creates a replacement in that slot.
        """
        plan: Plan[T, W] = Plan()
        self.entries.discard(entry)
        plan.dispose.append((entry, reason))
        return plan

    @_publishes
    def created(self, obj: T, now: float) -> Plan[T, W]:
        """An item was made in a reserved slot: ``LEND`` its new entry, or ``CLOSED``."""
        plan: Plan[T, W] = Plan()
        entry = Entry(obj, self.gen, self.pid, now)
        if self.closed:  # closed while it was being made: keep nothing
            self.size -= 1
            plan.dispose.append((entry, "closed"))
            plan.outcome = Outcome.CLOSED
        else:
            self.entries.add(entry)
            plan.outcome = Outcome.LEND
            plan.entry = entry
        return plan

    @_publishes
    def creation_failed(self) -> Plan[T, W]:
        """Making an item failed: free its slot for the next waiter."""
        plan: Plan[T, W] = Plan()
        self.size -= 1
        self._grant_free_slots(plan)
        return plan

    @_publishes
    def preloaded(self, objs: Iterable[T], now: float) -> None:
        """Items made in advance join the idle stack."""
        made = [Entry(obj, self.gen, self.pid, now) for obj in objs]
        for entry in made:
            self._rest(entry, now)
        self.idle.extend(made)
        self.entries.update(made)
        self.size += len(made)

    # -- under the lock: return ----------------------------------------------------------

    @_publishes
    def check_in(self, entry: Entry[T], broken: bool, now: float) -> Plan[T, W]:
        """A return the lock-free step could not do: dispose, hand to a waiter, or push and trim."""
        plan: Plan[T, W] = Plan()
        if entry.pid != self.pid:
            # Inherited across fork: the reset forgot it and its slot already.
            plan.dispose.append((entry, "closed"))
            return plan
        reason = self._unfit(entry, broken)
        life_max = self.max_lifetime
        if reason is None and life_max is not None and now - entry.created > life_max:
            reason = "expired"  # (idle time does not count while borrowed)
        if reason is not None:
            self._forget(entry, reason, plan)
        elif self.waiters and not self._may_overtake(now):
            # The first waiter has waited long enough: hand the entry straight over.
            waiter = self.waiters.popleft()
            waiter.serve(entry)
            plan.wake.append(waiter)
            self._notify_head(plan)  # the new head's turn, if anything is idle
        else:
            self._rest(entry, now)
            self.idle.append(entry)
            idle_max = self.max_idle_time
            if idle_max is not None:
                self._take_where(lambda idle: now - idle.idle_since > idle_max, "idle", plan)
            self._grant_free_slots(plan)  # (it also tells the first waiter)
        return plan

    @_publishes
    def look_after_push(self, entry: Entry[T]) -> Plan[T, W]:
        """After a lock-free push met a changed pool: take back the entry if it is stale.

        Also names the first waiter to be told, if anything is idle.
        """
        plan: Plan[T, W] = Plan()
        if entry.gen != self.gen or self.size > self.limit:
            try:
                self.idle.remove(entry)  # atomic: fails if an acquirer took it
            except ValueError:
                pass  # ...and that checkout hands it back to acquire() to drop
            else:
                reason = self._unfit(entry, False)
                if reason is None:
                    self.idle.append(entry)  # fine after all (the limit grew back)
                else:
                    self._forget(entry, reason, plan)
        self._notify_head(plan)
        return plan

    # -- under the lock: administration -----------------------------------------------------

    @_publishes
    def resize(self, limit: int, *, keep_borrowed: bool = False) -> Plan[T, W]:
        """New limit: growing serves waiters, shrinking drops surplus idle entries (LRU first).

        Borrowed entries above the new limit are retired as they come back.
        With ``keep_borrowed`` (kombu's rule) a limit below the entries borrowed
        is ``REFUSED`` instead, and nothing changes.
        """
        plan: Plan[T, W] = Plan()
        if keep_borrowed and limit < self.in_use:
            plan.outcome = Outcome.REFUSED
            return plan
        self.limit = limit
        excess = self.size - limit
        if excess > 0:
            self._take_bottom(excess, "shrink", plan)
        self._grant_free_slots(plan)
        return plan

    @_publishes
    def force_close_all(self) -> Plan[T, W]:
        """Drop every entry: idle ones to close (``"closed"``), borrowed ones to tear down.

        Borrowed entries (``"forced"``) keep their slots until they come back.
        """
        plan: Plan[T, W] = Plan()
        self.gen += 1
        self._take_bottom(None, "closed", plan)
        plan.dispose.extend((entry, "forced") for entry in self.entries)
        self.entries.clear()
        return plan

    @_publishes
    def close(self) -> Plan[T, W] | None:
        """Close: turn every waiter away, drop idle entries. ``None`` if closed already."""
        if self.closed:
            return None
        plan: Plan[T, W] = Plan()
        self.closed = True
        self.gen += 1
        while self.waiters:
            waiter = self.waiters.popleft()
            waiter.turn_away()
            plan.wake.append(waiter)
        self._take_bottom(None, "closed", plan)
        return plan

    @_publishes
    def prune(self, now: float) -> Plan[T, W]:
        """Drop the idle entries past ``max_idle_time`` or ``max_lifetime``."""
        plan: Plan[T, W] = Plan()
        if self.timed:
            self._take_where(lambda entry: now > entry.expire_at, "expired", plan)
        return plan

    @_publishes
    def invalidate(self) -> Plan[T, W]:
        """Every entry died at once: forget idle ones, retire borrowed ones on return.

        The idle entries are not listed for disposal: whatever killed them
        freed them too (a channel pool whose connection is gone).
        """
        plan: Plan[T, W] = Plan()
        self.gen += 1
        self._take_bottom(None, None, plan)
        return plan

    # -- helpers, under the lock ------------------------------------------------------------

    def _may_overtake(self, now: float) -> bool:
        """Whether a running caller may still take an entry ahead of the first waiter."""
        try:
            head = self.waiters[0]
        except IndexError:
            return True
        return now - head.since < self.fairness_window

    def _rest(self, entry: Entry[T], now: float) -> None:
        """An entry goes idle at ``now``: stamp it with its deadlines."""
        entry.idle_since = now
        entry.probe_at = now + self.verify_delay
        expire_at = math.inf
        if self.max_idle_time is not None:
            expire_at = now + self.max_idle_time
        if self.max_lifetime is not None:
            expire_at = min(expire_at, entry.created + self.max_lifetime)
        entry.expire_at = expire_at

    def _lend(self, entry: Entry[T], plan: Plan[T, W]) -> None:
        plan.outcome = Outcome.LEND
        plan.entry = entry

    def _take_idle(self, waiter: W | None, plan: Plan[T, W], now: float) -> None:
        """Pop a lendable idle entry if the caller may take it; lend it through ``plan``.

        With no ``waiter`` the caller may take one unless a waiter is owed it;
        a ``waiter`` may take one only at the head of the queue, and then
        leaves the queue, served. Stale entries met on the way are dropped.
        """
        waiters = self.waiters
        while self.idle:
            if waiter is None:
                if waiters and not self._may_overtake(now):
                    return
            elif not waiters or waiters[0] is not waiter:
                return  # (a slot freed by a stale entry may have served it)
            try:
                entry = self.idle.pop()
            except IndexError:  # a lock-free checkout was quicker
                return
            if entry.gen == self.gen and self.size <= self.limit:
                if waiter is None:
                    self._lend(entry, plan)
                else:
                    waiters.popleft()
                    waiter.serve(entry)
                    self._notify_head(plan)  # more may be idle: the next waiter's turn
                return
            self._forget(entry, self._unfit(entry, False) or "closed", plan)

    def _grant_free_slots(self, plan: Plan[T, W]) -> None:
        """Let waiters create entries in any free slot, first come first served."""
        waiters = self.waiters
        while waiters and self.size < self.limit:
            waiter = waiters.popleft()
            self.size += 1
            waiter.serve(None)
            plan.wake.append(waiter)
        self._notify_head(plan)

    def _notify_head(self, plan: Plan[T, W]) -> None:
        """Have the first waiter told that an entry may be idle."""
        if self.idle and self.waiters:
            plan.notify = self.waiters[0]

    def _forget(self, entry: Entry[T], reason: str, plan: Plan[T, W]) -> None:
        """Give up an entry's slot and list it for disposal."""
        self.size -= 1
        self.entries.discard(entry)
        plan.dispose.append((entry, reason))
        self._grant_free_slots(plan)

    def _take_bottom(self, count: int | None, reason: str | None, plan: Plan[T, W]) -> None:
        """Remove (the ``count`` least recently used, or all) idle entries."""
        idle = self.idle
        taken: list[Entry[T]] = []
        while count is None or len(taken) < count:
            try:
                taken.append(idle.pop(0))  # atomic, like the acquirers' pop()
            except IndexError:
                break
        self._let_go(taken, reason, plan)

    def _take_where(self, stale: Callable[[Entry[T]], bool], reason: str, plan: Plan[T, W]) -> None:
        """Remove the idle entries for which ``stale`` is true (bottom first)."""
        idle = self.idle
        taken: list[Entry[T]] = []
        for entry in list(idle):
            if stale(entry):
                try:
                    idle.remove(entry)  # atomic: fails if an acquirer took it meanwhile
                except ValueError:
                    continue
                taken.append(entry)
        self._let_go(taken, reason, plan)

    def _let_go(self, taken: list[Entry[T]], reason: str | None, plan: Plan[T, W]) -> None:
        """Give up the slots of ``taken``; list them for disposal unless ``reason`` is None."""
        self.entries.difference_update(taken)
        self.size -= len(taken)
        if reason is not None:
            plan.dispose.extend((entry, reason) for entry in taken)
        self._grant_free_slots(plan)

    def _unfit(self, entry: Entry[T], broken: bool) -> str | None:
        """Why a returned (or stale) entry may not be kept, or None if it may."""
        if entry not in self.entries:
            # Torn down by force_close_all() while borrowed; close it again in
            # case the borrower reopened it meanwhile (disposal is idempotent).
            return "closed"
        if broken:
            return "broken"
        if self.closed or entry.gen != self.gen:
            return "closed"
        if self.size > self.limit:
            return "shrink"
        return None
