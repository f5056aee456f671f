"""The pool's decisions alone (pools.decide): a state, events with their times, and plans.

No pool, no threads, no clock: each test feeds events to a PoolState and
checks what it decided.
"""

from __future__ import annotations

import math

import pytest

from pools.decide import CLOSED, SERVED, WAITING, Entry, Outcome, PoolState, Step, Ticket


def make_state(limit: int = 2, **kwargs: object) -> PoolState[str, Ticket]:
    return PoolState(limit, pid=1, fairness_window=0.005, **kwargs)  # type: ignore[arg-type]


def lend_new(state: PoolState[str, Ticket], obj: str, now: float = 0.0) -> Entry[str]:
    """A caller finds nothing idle, reserves a slot and fills it with ``obj``."""
    plan = state.acquire(False, now)
    assert plan.outcome is Outcome.CREATE
    plan = state.created(obj, now)
    assert plan.outcome is Outcome.LEND and plan.entry is not None
    return plan.entry


def queue(state: PoolState[str, Ticket], since: float) -> Ticket:
    """A caller finds the pool full and waits."""
    plan = state.acquire(True, since)
    assert plan.outcome is Outcome.WAIT
    ticket = Ticket(since)
    state.enqueue(ticket, since, plan)
    assert plan.outcome is Outcome.WAIT
    return ticket


def test_a_free_slot_is_reserved_then_filled() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    assert (entry.obj, state.size, state.in_use, state.entries) == ("a", 1, 1, {entry})


def test_at_the_limit_a_caller_is_refused_or_waits() -> None:
    state = make_state(1)
    lend_new(state, "a")
    assert state.acquire(False, 0.0).outcome is Outcome.LIMIT
    assert state.acquire(True, 0.0).outcome is Outcome.WAIT
    assert state.size == 1 and not state.waiters  # nothing changed: the caller queues itself


def test_a_returned_entry_is_pushed_and_lent_again_last_in_first_out() -> None:
    state = make_state()
    a, b = lend_new(state, "a"), lend_new(state, "b")
    assert state.put_back(a, 1.0) is None
    assert state.put_back(b, 2.0) is None
    assert state.idle == [a, b]
    assert state.lend_idle(3.0) is b
    assert state.lend_idle(3.0) is a
    assert state.lend_idle(3.0) is None  # nothing idle: decide under the lock


def test_a_waiter_may_be_overtaken_only_within_the_fairness_window() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    waiter = queue(state, since=10.0)
    # 4 ms after it queued: the entry is pushed, and the waiter is to be told...
    assert state.put_back(entry, 10.004) is waiter
    # ...but a running caller may still take it first.
    assert state.lend_idle(10.004) is entry
    # 6 ms: too late to push it; under the lock it goes straight to the waiter.
    assert state.put_back(entry, 10.006) is Step.LOCKED
    assert state.lend_idle(10.006) is None
    plan = state.check_in(entry, False, 10.006)
    assert plan.wake == [waiter] and not state.waiters
    assert (waiter.state, waiter.entry) == (SERVED, entry)
    plan = state.served(waiter, 10.007)
    assert (plan.outcome, plan.entry, plan.verdict) == (Outcome.LEND, entry, None)


def test_without_a_time_the_lock_free_steps_decline_when_someone_waits() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    queue(state, since=10.0)
    assert state.put_back(entry, None) is Step.LOCKED
    state.check_in(entry, False, 10.001)  # within the window: pushed
    assert state.lend_idle(None) is None


def test_without_the_gil_the_lock_free_steps_always_decline() -> None:
    state = make_state(lock_free=False)
    entry = lend_new(state, "a")
    assert state.put_back(entry, 1.0) is Step.LOCKED
    state.check_in(entry, False, 1.0)
    assert state.idle == [entry]
    assert state.lend_idle(2.0) is None
    plan = state.acquire(False, 2.0)
    assert (plan.outcome, plan.entry) == (Outcome.LEND, entry)


def test_the_first_waiter_takes_an_entry_it_finds_when_it_queues() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    plan = state.acquire(True, 5.0)
    assert plan.outcome is Outcome.WAIT
    state.put_back(entry, 5.0)  # returned before the waiter queued: no one was told
    waiter = Ticket(5.0)
    state.enqueue(waiter, 5.0, plan)
    assert (plan.outcome, plan.entry) == (Outcome.LEND, entry)
    assert not state.waiters and waiter.state == SERVED


def test_a_woken_waiter_that_finds_nothing_waits_again_or_times_out() -> None:
    state = make_state(1)
    lend_new(state, "a")
    waiter = queue(state, since=0.0)
    assert state.after_wake(waiter, True, 1.0).outcome is Outcome.WAIT
    assert list(state.waiters) == [waiter]
    assert state.after_wake(waiter, False, 2.0).outcome is Outcome.TIMEOUT
    assert not state.waiters and waiter.state == WAITING


def test_a_broken_return_frees_its_slot_for_the_first_waiter() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    waiter = queue(state, since=0.0)
    plan = state.check_in(entry, True, 1.0)
    assert plan.dispose == [(entry, "broken")]
    assert plan.wake == [waiter] and (waiter.state, waiter.entry) == (SERVED, None)
    assert state.served(waiter, 1.0).outcome is Outcome.CREATE
    assert state.size == 1  # the slot passed to the waiter


def test_a_withdrawn_waiter_gives_back_what_it_was_given() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    waiter = queue(state, since=0.0)
    state.check_in(entry, False, 1.0)  # handed over (window passed)
    plan = state.withdraw(waiter)
    assert (plan.outcome, plan.entry) == (Outcome.GIVE_BACK, entry)
    queued = queue(state, since=2.0)
    plan = state.withdraw(queued)
    assert plan.outcome is Outcome.NOTHING and not state.waiters


def test_judging_an_entry_before_it_is_lent() -> None:
    state = make_state(verify_after=1.0, max_idle_time=30.0, max_lifetime=100.0)
    entry = lend_new(state, "a", now=0.0)
    state.check_in(entry, False, 10.0)  # (an expiring pool returns under the lock)
    assert entry.check_at == 11.0  # the earliest of probe (11), idle (40) and lifetime (100)
    assert state.judge(entry, 10.5) is None
    assert state.judge(entry, 11.0) == "verify"
    assert state.judge(entry, 40.1) == "expired"
    state.force_close_all()
    assert state.judge(entry, 10.5) == "closed"


def test_an_entry_that_is_never_judged_is_never_due() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    state.put_back(entry, 5.0)
    assert entry.check_at == math.inf and state.judge(entry, 1e9) is None


def test_expiring_pools_return_under_the_lock_and_trim_the_stack() -> None:
    state = make_state(3, max_idle_time=30.0)
    a, b = lend_new(state, "a"), lend_new(state, "b")
    assert state.put_back(a, 1.0) is Step.LOCKED
    state.check_in(a, False, 1.0)
    plan = state.check_in(b, False, 40.0)
    assert plan.dispose == [(a, "idle")] and state.idle == [b] and state.size == 1


def test_a_stale_entry_taken_off_the_stack_is_dropped_under_the_lock() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    state.put_back(entry, 1.0)
    state.gen += 1  # (what close() or force_close_all() do, between the push and the pop)
    assert state.lend_idle(2.0) is None and state.stale == [entry]
    plan = state.acquire(False, 2.0)
    assert plan.dispose == [(entry, "closed")] and plan.outcome is Outcome.CREATE
    assert state.size == 1  # its slot went to the caller


def test_a_foreign_entry_is_disposed_of_without_touching_the_books() -> None:
    parent = make_state()
    inherited = lend_new(parent, "theirs")
    state = parent.successor(pid=2)  # the state of the pool in a forked child
    lend_new(state, "mine")
    assert state.put_back(inherited, 1.0) is Step.LOCKED  # an older generation
    plan = state.check_in(inherited, False, 1.0)
    assert plan.dispose == [(inherited, "closed")]
    assert (state.size, state.idle) == (1, [])


def test_resize_serves_waiters_when_growing_and_drops_the_oldest_idle_when_shrinking() -> None:
    state = make_state(1)
    a = lend_new(state, "a")
    waiter = queue(state, since=0.0)
    plan = state.resize(2)
    assert plan.wake == [waiter] and waiter.state == SERVED and state.size == 2
    state.put_back(a, 1.0)
    plan = state.resize(1)
    assert plan.dispose == [(a, "shrink")] and state.size == 1


def test_force_close_all_closes_idle_entries_and_tears_down_borrowed_ones() -> None:
    state = make_state()
    idle, out = lend_new(state, "idle"), lend_new(state, "out")
    state.put_back(idle, 1.0)
    plan = state.force_close_all()
    assert plan.dispose == [(idle, "closed"), (out, "forced")]
    assert state.size == 1  # the borrowed one keeps its slot until it comes back
    plan = state.check_in(out, False, 2.0)
    assert plan.dispose == [(out, "closed")] and state.size == 0


def test_close_turns_every_waiter_away() -> None:
    state = make_state(1)
    lend_new(state, "a")
    waiter = queue(state, since=0.0)
    plan = state.close()
    assert plan is not None and plan.wake == [waiter] and waiter.state == CLOSED
    assert state.after_wake(waiter, True, 1.0).outcome is Outcome.CLOSED
    assert state.close() is None  # closing twice decides nothing
    assert state.acquire(False, 1.0).outcome is Outcome.CLOSED


def test_invalidate_forgets_idle_entries_without_disposing_of_them() -> None:
    state = make_state()
    idle, out = lend_new(state, "idle"), lend_new(state, "out")
    state.put_back(idle, 1.0)
    plan = state.invalidate()
    assert plan.dispose == [] and state.idle == [] and state.size == 1
    assert state.check_in(out, False, 2.0).dispose == [(out, "closed")]


@pytest.mark.parametrize("closed", [False, True])
def test_an_item_made_for_a_caller_is_kept_unless_the_pool_closed(closed: bool) -> None:
    state = make_state()
    assert state.acquire(False, 0.0).outcome is Outcome.CREATE
    if closed:
        state.close()
    plan = state.created("a", 1.0)
    if closed:
        assert plan.outcome is Outcome.CLOSED and plan.dispose[0][1] == "closed"
        assert state.size == 0
    else:
        assert plan.outcome is Outcome.LEND and state.entries == {plan.entry}


def test_a_successor_state_starts_empty_in_the_next_generation() -> None:
    state = make_state(3, verify_after=1.0)
    lend_new(state, "a")
    child = state.successor(pid=2)
    assert (child.limit, child.size, child.gen, child.pid, child.verify_after) == (3, 0, 1, 2, 1.0)
    assert repr(child) == "<PoolState limit=3 size=0 idle=0 waiting=0 gen=1>"
