"""Resizing, force_close_all and close, with items idle, borrowed and waited for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.errors import LimitExceeded
from pools import PoolClosed
from tests.support.fake_pools import (
    FakeClock,
    FakeGates,
    FakePool,
    gil_mode,  # noqa: F401
    idle_items,
)

pytestmark = pytest.mark.usefixtures("gil_mode")


@pytest.fixture
def pool() -> Iterator[FakePool]:
    p = FakePool(3)
    yield p
    p.close()


def test_growing_wakes_waiters() -> None:
    clock = FakeClock()
    gates = FakeGates(clock)
    pool = FakePool(3, clock=clock, gate_factory=gates)
    for _ in range(3):
        pool.acquire()
    gates.meanwhile = [lambda: pool.resize(4)]
    got = [pool.acquire(block=True).resource]
    assert len(got) == 1 and pool.in_use == 4
    assert len(pool.created) == 4


def test_shrinking_with_items_out_closes_idle_now_and_borrowed_on_return() -> None:
    pool = FakePool(5)
    held = [pool.acquire() for _ in range(4)]
    held.pop().release()  # 3 out, 1 idle
    idle = idle_items(pool)[0]
    pool.resize(2)
    assert idle.disposed == "shrink"
    assert (pool.limit, pool.in_use, pool.idle) == (2, 3, 0)
    with pytest.raises(LimitExceeded):
        pool.acquire()
    first = held[0].resource
    held[0].release()  # 3 out > 2: closed, not kept
    assert first.disposed == "shrink"
    assert (pool.in_use, pool.idle) == (2, 0)
    second = held[1].resource
    held[1].release()  # now it fits: kept
    assert second.disposed is None
    assert (pool.in_use, pool.idle) == (1, 1)


def test_shrinking_closes_the_least_recently_used_idle_items(pool: FakePool) -> None:
    leases = [pool.acquire() for _ in range(3)]
    items = [lease.resource for lease in leases]
    for lease in leases:
        lease.release()
    pool.resize(1)
    assert [i.disposed for i in items] == ["shrink", "shrink", None]


def test_force_close_all_closes_idle_and_borrowed_and_pool_stays_usable(pool: FakePool) -> None:
    out = pool.acquire()
    pool.acquire().release()
    idle = idle_items(pool)[0]
    pool.force_close_all()
    assert idle.disposed == "closed"
    forced = out.resource
    assert forced.disposed == "forced"
    assert (pool.in_use, pool.idle) == (1, 0)
    out.release()  # discarded (closed again, in case it was reopened), slot freed
    assert forced.disposed == "closed"
    assert (pool.in_use, pool.idle) == (0, 0)
    with pool.acquire() as fresh:
        assert fresh.resource.disposed is None


def test_an_item_handed_to_a_waiter_as_force_close_all_runs_is_replaced() -> None:
    clock = FakeClock()
    gates = FakeGates(clock)
    pool = FakePool(1, fairness_window=0.0, clock=clock, gate_factory=gates)
    held = pool.acquire()
    item = held.resource

    def handed_over_then_closed() -> None:
        held.release()  # straight to the waiter...
        pool.force_close_all()  # ...which has not woken up yet

    gates.meanwhile = [handed_over_then_closed]
    with pool.acquire(block=True, timeout=5) as lease:
        assert lease.resource is not item
    assert item.disposed == "closed"  # forced while handed over, closed when replaced


def test_close_makes_the_pool_unusable(pool: FakePool) -> None:
    out = pool.acquire()
    pool.acquire().release()
    pool.close()
    pool.close()
    assert pool.is_closed and pool.idle == 0
    with pytest.raises(PoolClosed, match="closed"):
        pool.acquire()
    out.release()
    assert out.is_released
    assert [reason for _, reason in pool.disposed] == ["closed", "closed"]


def test_close_wakes_waiters_with_a_clear_error() -> None:
    clock = FakeClock()
    gates = FakeGates(clock)
    pool = FakePool(1, clock=clock, gate_factory=gates)
    pool.acquire()
    gates.meanwhile = [pool.close]
    errors: list[BaseException] = []
    try:
        pool.acquire(block=True, timeout=5)
    except PoolClosed as exc:
        errors.append(exc)
    assert len(errors) == 1 and "closed" in str(errors[0])
    assert pool.waiting == 0


def test_an_item_made_while_the_pool_closed_is_not_kept() -> None:
    class ClosedMeanwhile(FakePool):
        def create_resource(self):  # type: ignore[no-untyped-def]
            item = super().create_resource()
            self.close()
            return item

    pool = ClosedMeanwhile(1)
    with pytest.raises(PoolClosed, match="closed while an item was made"):
        pool.acquire()
    assert pool.created[0].disposed == "closed"
    assert (pool.in_use, pool.idle) == (0, 0)


def test_pool_is_a_context_manager() -> None:
    with FakePool(2, preload=1) as p:
        assert p.idle == 1
    assert p.is_closed
