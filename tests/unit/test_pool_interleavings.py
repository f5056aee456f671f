"""The lock-free return meeting a queueing waiter or a changing pool (under the GIL only).

Under the GIL, idle items are taken and put back without the pool lock (see
pools.waiting for the protocol). These tests force the interleavings the
protocol exists for, by running another thread at the exact step where it
would be dangerous, and check that no wake-up is lost and no stale item is
lent. Without the GIL every return takes the lock, so these interleavings
cannot happen there (test_pool_gil.py).
"""

from __future__ import annotations

import threading

import pytest

from broker.errors import LimitExceeded
from pools import PoolClosed
from tests.support.fake_pools import FakeClock, FakeGates, FakePool, Item


def test_an_item_returned_just_before_a_waiter_queues_is_not_missed() -> None:
    # The waiter found the stack empty and is about to queue (it is getting
    # its gate, under the pool lock) when the item comes back; the releaser
    # looks at the queue before the waiter is in it, so it notifies no one.
    # The waiter must find the item when it looks after queueing.
    clock = FakeClock()
    held = []

    def release_in_another_thread() -> None:
        releaser = threading.Thread(target=held[0].release, daemon=True)
        releaser.start()
        releaser.join(5)
        assert not releaser.is_alive(), "the return waited for the pool lock"

    gates = FakeGates(clock, on_make=release_in_another_thread)
    pool = FakePool(1, clock=clock, gate_factory=gates)
    held.append(pool.acquire())
    item = held[0].resource
    got = pool.acquire(block=True, timeout=5).resource
    assert gates.sleeps == [], "the waiter slept through an idle item"
    assert got is item


@pytest.mark.parametrize("admin", ["force_close_all", "close", "shrink"])
def test_an_item_returned_as_the_pool_changes_is_never_lent_again(admin: str) -> None:
    # The interleaving the checks after a lock-free push and after a lock-free
    # pop exist for: a return passes its checks, then force_close_all(),
    # close() or a shrink runs, then the item lands on the stack, and another
    # thread takes it off before the releaser looks again. (White box: the
    # pool's idle stack is replaced by one that runs all this on the push.)
    pool = FakePool(2)
    keep = pool.acquire()
    lease = pool.acquire()
    item = lease.resource
    outcome: list[object] = []

    class Interleaved(list):  # type: ignore[type-arg]
        fired = False

        def append(self, entry: object) -> None:
            if self.fired:
                return super().append(entry)
            self.fired = True
            {"force_close_all": pool.force_close_all, "close": pool.close}.get(
                admin, lambda: pool.resize(1)
            )()
            super().append(entry)
            taker = threading.Thread(target=lambda: outcome.append(try_acquire()), daemon=True)
            taker.start()
            taker.join(5)

    def try_acquire() -> object:
        try:
            return pool.acquire().resource
        except (LimitExceeded, PoolClosed) as exc:
            return type(exc)

    pool._state.idle = Interleaved()
    lease.release()
    expected = {"force_close_all": "closed", "close": "closed", "shrink": "shrink"}[admin]
    assert item.disposed == expected
    assert outcome and outcome[0] is not item
    if admin == "force_close_all":
        assert isinstance(outcome[0], Item) and outcome[0].disposed is None
    else:  # a closed pool lends nothing; a shrunk one nothing while over its limit
        assert outcome == [PoolClosed if admin == "close" else LimitExceeded]
    assert pool.idle == 0
    keep.release()
