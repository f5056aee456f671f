"""Random sequences of pool operations keep the pool's invariants (hypothesis, stateful)."""

from __future__ import annotations

import sys
from unittest import mock

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.errors import LimitExceeded
from pools import Lease
from tests.support.fake_pools import FakePool, Item, idle_items


class PoolMachine(RuleBasedStateMachine):
    """Random acquire/release/break/resize/force_close_all sequences keep the invariants.

    Invariants (after a shrink with items out, ``in_use`` may exceed the limit;
    then nothing is idle and no acquire succeeds until it fits again):

    * ``idle <= max(0, limit - in_use)``;
    * an acquire succeeds only while ``in_use < limit``;
    * no item is twice in the idle stack, nor idle and borrowed at once;
    * a disposed item is never handed out again;
    * an acquire with an idle item available reuses it (creates nothing).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = self.make_pool()
        self.held: list[Lease[Item]] = []
        self.released: list[Lease[Item]] = []

    def make_pool(self) -> FakePool:
        return FakePool(3)

    @rule()
    def acquire(self) -> None:
        pool = self.pool
        in_use, idle, created = pool.in_use, pool.idle, len(pool.created)
        top = idle_items(pool)[-1] if idle else None
        try:
            lease = pool.acquire()
        except LimitExceeded:
            assert idle == 0 and in_use >= pool.limit
            return
        assert in_use < pool.limit
        if top is not None and top.healthy:
            assert len(pool.created) == created, "a healthy idle item was available"
            assert lease.resource is top, "idle items are reused last in, first out"
        elif top is not None:
            assert top.disposed == "broken" and lease.resource is not top
        assert lease.resource.disposed is None
        self.held.append(lease)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        lease.release()
        self.released.append(lease)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def break_and_release(self, data: st.DataObject) -> None:
        lease = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        item = lease.resource
        already_forced = item.disposed == "forced"
        lease.discard()
        assert item.disposed == ("closed" if already_forced else "broken")

    @precondition(lambda self: self.released)
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        before = (self.pool.in_use, self.pool.idle)
        self.released[data.draw(st.integers(0, len(self.released) - 1))].release()
        assert (self.pool.in_use, self.pool.idle) == before

    @precondition(lambda self: self.pool.idle)
    @rule()
    def an_idle_item_dies(self) -> None:
        idle_items(self.pool)[-1].healthy = False

    @rule(limit=st.integers(1, 5))
    def resize(self, limit: int) -> None:
        self.pool.resize(limit)

    @rule()
    def force_close_all(self) -> None:
        self.pool.force_close_all()
        assert self.pool.idle == 0
        assert all(lease.resource.disposed == "forced" for lease in self.held)

    @invariant()
    def counts_fit_the_limit(self) -> None:
        pool = self.pool
        assert pool.in_use == len(self.held)
        assert pool.idle <= max(0, pool.limit - pool.in_use)

    @invariant()
    def no_item_twice(self) -> None:
        idle = idle_items(self.pool)
        assert len({id(i) for i in idle}) == len(idle)
        held = {id(lease.resource) for lease in self.held}
        assert not held & {id(i) for i in idle}
        assert all(i.disposed is None for i in idle)


class PoolMachineWithoutGil(PoolMachine):
    """The same, on a pool that decides everything under its lock (a free-threaded build)."""

    def make_pool(self) -> FakePool:
        with mock.patch.object(sys, "_is_gil_enabled", lambda: False, create=True):
            return FakePool(3)


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
PoolMachineWithoutGil.TestCase.settings = settings(
    max_examples=75, stateful_step_count=40, deadline=None
)
test_pool_state_machine = PoolMachine.TestCase
test_pool_state_machine_without_gil = PoolMachineWithoutGil.TestCase
