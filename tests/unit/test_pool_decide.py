"""The pool's decisions alone (pools.decide): a state, events with their times, and plans.

No pool, no threads, no clock: each test feeds events to a PoolState and
checks what it decided, and what it published for the lock-free checkout
and return (``overtake_until``, ``lend_gen``, ``push_gen``, and the
``probe_at`` / ``expire_at`` deadlines of idle entries).
"""

from __future__ import annotations

import math

import pytest

from pools.decide import CLOSED, SERVED, WAITING, Entry, Outcome, PoolState, Ticket


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


# -- lending, creating, waiting -------------------------------------------------------------


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


def test_returned_entries_are_lent_again_last_in_first_out() -> None:
    state = make_state()
    a, b = lend_new(state, "a"), lend_new(state, "b")
    state.check_in(a, False, 1.0)
    state.check_in(b, False, 2.0)
    assert state.idle == [a, b]
    assert state.acquire(False, 3.0).entry is b
    assert state.acquire(False, 3.0).entry is a


def test_the_first_waiter_takes_an_entry_it_finds_when_it_queues() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    plan = state.acquire(True, 5.0)
    assert plan.outcome is Outcome.WAIT
    state.idle.append(entry)  # returned lock-free before the waiter queued: no one was told
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
    assert state.served(waiter).outcome is Outcome.CREATE
    assert state.size == 1  # the slot passed to the waiter


def test_a_withdrawn_waiter_gives_back_what_it_was_given() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    waiter = queue(state, since=0.0)
    state.check_in(entry, False, 1.0)  # handed over (the window passed)
    plan = state.withdraw(waiter)
    assert (plan.outcome, plan.entry) == (Outcome.GIVE_BACK, entry)
    queued = queue(state, since=2.0)
    plan = state.withdraw(queued)
    assert plan.outcome is Outcome.NOTHING and not state.waiters


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


# -- the fairness window and what is published for the lock-free steps --------------------


def test_with_no_one_waiting_the_lock_free_steps_may_lend_and_push_freely() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    assert (state.overtake_until, state.lend_gen, state.push_gen) == (math.inf, 0, 0)
    assert entry.gen == state.push_gen == state.lend_gen


def test_a_waiter_may_be_overtaken_only_within_the_fairness_window() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    waiter = queue(state, since=10.0)
    # Running callers may take an idle entry ahead of it until 10.005...
    assert state.overtake_until == pytest.approx(10.005)
    state.check_in(entry, False, 10.004)  # (a return before then is pushed)
    assert state.idle == [entry] and list(state.waiters) == [waiter]
    plan = state.acquire(False, 10.004)
    assert (plan.outcome, plan.entry) == (Outcome.LEND, entry)
    # ...after that, a return goes straight to the waiter.
    plan = state.check_in(entry, False, 10.006)
    assert plan.wake == [waiter] and not state.waiters
    assert (waiter.state, waiter.entry) == (SERVED, entry)
    assert state.overtake_until == math.inf
    plan = state.served(waiter)
    assert (plan.outcome, plan.entry) == (Outcome.LEND, entry)


def test_after_the_fairness_window_a_running_caller_queues_behind_the_waiter() -> None:
    state = make_state(1)
    entry = lend_new(state, "a")
    queue(state, since=10.0)
    state.check_in(entry, False, 10.001)  # pushed: within the window
    assert state.acquire(True, 10.006).outcome is Outcome.WAIT


def test_every_decision_that_moves_the_queue_publishes_the_new_head() -> None:
    state = make_state(1)
    lend_new(state, "a")
    first = queue(state, since=1.0)
    second = queue(state, since=2.0)
    assert state.overtake_until == pytest.approx(1.005)
    assert state.after_wake(first, False, 3.0).outcome is Outcome.TIMEOUT
    assert state.overtake_until == pytest.approx(2.005)
    state.withdraw(second)
    assert state.overtake_until == math.inf


def test_without_the_gil_nothing_is_published_for_the_lock_free_steps() -> None:
    state = make_state(lock_free=False)
    entry = lend_new(state, "a")
    assert (state.overtake_until, state.lend_gen, state.push_gen) == (-math.inf, -1, -1)
    state.check_in(entry, False, 1.0)
    assert state.idle == [entry]
    plan = state.acquire(False, 2.0)
    assert (plan.outcome, plan.entry) == (Outcome.LEND, entry)


def test_over_the_limit_nothing_is_lent_or_pushed_without_the_lock() -> None:
    state = make_state(2)
    a, _ = lend_new(state, "a"), lend_new(state, "b")
    state.resize(1)
    assert (state.lend_gen, state.push_gen) == (-1, -1)
    assert state.check_in(a, False, 1.0).dispose == [(a, "shrink")]
    assert (state.lend_gen, state.push_gen) == (0, 0)  # it fits again


def test_a_stale_entry_taken_off_the_stack_is_dropped_under_the_lock() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    state.check_in(entry, False, 1.0)
    state.idle.pop()  # a lock-free checkout takes it...
    state.force_close_all()  # ...just as the pool moves to the next generation
    assert entry.gen != state.lend_gen
    plan = state.acquire(False, 2.0, entry)  # so it hands the entry to a decision
    assert plan.dispose == [(entry, "closed")] and plan.outcome is Outcome.CREATE
    assert state.size == 1  # its slot went to the caller


def test_an_entry_pushed_as_the_pool_changed_is_taken_back() -> None:
    state = make_state(2)
    a, _ = lend_new(state, "a"), lend_new(state, "b")
    state.resize(1)  # after a lock-free return checked push_gen...
    state.idle.append(a)  # ...and before it pushed
    plan = state.look_after_push(a)
    assert plan.dispose == [(a, "shrink")] and state.idle == [] and state.size == 1


# -- judging, expiry ---------------------------------------------------------------------------


def test_an_idle_entry_gets_its_probe_and_expiry_deadlines() -> None:
    state = make_state(verify_after=1.0, max_idle_time=30.0, max_lifetime=35.0)
    entry = lend_new(state, "a", now=0.0)
    state.check_in(entry, False, 10.0)
    assert (entry.idle_since, entry.probe_at) == (10.0, 11.0)
    assert entry.expire_at == 35.0  # the earlier of idle (40) and lifetime (35)


def test_an_entry_of_a_pool_that_neither_probes_nor_expires_has_no_deadlines() -> None:
    state = make_state()
    entry = lend_new(state, "a")
    state.check_in(entry, False, 5.0)
    assert (entry.probe_at, entry.expire_at) == (math.inf, math.inf)
    assert state.deadlines is False


def test_expiring_pools_return_under_the_lock_and_trim_the_stack() -> None:
    state = make_state(3, max_idle_time=30.0)
    a, b = lend_new(state, "a"), lend_new(state, "b")
    assert (state.lend_gen, state.push_gen) == (0, -1)  # lent freely, returned under the lock
    state.check_in(a, False, 1.0)
    plan = state.check_in(b, False, 40.0)
    assert plan.dispose == [(a, "idle")] and state.idle == [b] and state.size == 1


def test_prune_drops_expired_idle_entries() -> None:
    state = make_state(3, max_lifetime=10.0)
    a, b = lend_new(state, "a", now=0.0), lend_new(state, "b", now=5.0)
    state.check_in(a, False, 6.0)
    state.check_in(b, False, 6.0)
    assert state.prune(12.0).dispose == [(a, "expired")]
    assert state.idle == [b] and state.size == 1


# -- fork, administration ---------------------------------------------------------------------


def test_a_foreign_entry_is_disposed_of_without_touching_the_books() -> None:
    parent = make_state()
    inherited = lend_new(parent, "theirs")
    state = parent.successor(pid=2)  # the state of the pool in a forked child
    lend_new(state, "mine")
    assert inherited.gen != state.push_gen  # an older generation: returned under the lock
    plan = state.check_in(inherited, False, 1.0)
    assert plan.dispose == [(inherited, "closed")]
    assert (state.size, state.idle) == (1, [])


def test_resize_serves_waiters_when_growing_and_drops_the_oldest_idle_when_shrinking() -> None:
    state = make_state(1)
    a = lend_new(state, "a")
    waiter = queue(state, since=0.0)
    plan = state.resize(2)
    assert plan.wake == [waiter] and waiter.state == SERVED and state.size == 2
    state.check_in(a, False, 1.0)
    plan = state.resize(1)
    assert plan.dispose == [(a, "shrink")] and state.size == 1


def test_force_close_all_closes_idle_entries_and_tears_down_borrowed_ones() -> None:
    state = make_state()
    idle, out = lend_new(state, "idle"), lend_new(state, "out")
    state.check_in(idle, False, 1.0)
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
    state.check_in(idle, False, 1.0)
    plan = state.invalidate()
    assert plan.dispose == [] and state.idle == [] and state.size == 1
    assert state.check_in(out, False, 2.0).dispose == [(out, "closed")]


def test_a_successor_state_starts_empty_in_the_next_generation() -> None:
    state = make_state(3, verify_after=1.0)
    lend_new(state, "a")
    child = state.successor(pid=2)
    assert (child.limit, child.size, child.gen, child.pid, child.verify_after) == (3, 0, 1, 2, 1.0)
    assert (child.lend_gen, child.push_gen) == (1, 1)
    assert repr(child) == "<PoolState limit=3 size=0 idle=0 waiting=0 gen=1>"
