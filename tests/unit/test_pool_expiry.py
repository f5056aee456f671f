"""Recycling on a fake clock: idle time, lifetime, prune, and when an idle item is probed."""

from __future__ import annotations

import pytest

from tests.support.fake_pools import FakeClock, FakePool, Item, gil_mode, idle_items  # noqa: F401

pytestmark = pytest.mark.usefixtures("gil_mode")


def test_max_idle_time_replaces_items_idle_too_long() -> None:
    clock = FakeClock()
    pool = FakePool(3, max_idle_time=30, clock=clock)
    pool.acquire().release()
    clock.now += 29
    with pool.acquire() as lease:
        kept = lease.resource
    clock.now += 31
    with pool.acquire() as lease:
        assert lease.resource is not kept
    assert kept.disposed == "expired"


def test_max_idle_time_closes_stale_items_at_the_bottom_on_release() -> None:
    clock = FakeClock()
    pool = FakePool(3, max_idle_time=30, clock=clock)
    a, b = pool.acquire(), pool.acquire()
    stale = a.resource
    a.release()
    clock.now += 31
    b.release()  # the LIFO stack keeps stale ones at the bottom: dropped here
    assert stale.disposed == "idle"
    assert pool.idle == 1


def test_max_lifetime_retires_old_items() -> None:
    clock = FakeClock()
    pool = FakePool(3, max_lifetime=60, clock=clock)
    lease = pool.acquire()
    old = lease.resource
    clock.now += 61
    lease.release()  # too old to keep
    assert old.disposed == "expired"
    pool.acquire().release()
    young = idle_items(pool)[0]
    clock.now += 61
    with pool.acquire() as lease:  # too old to hand out
        assert lease.resource is not young
    assert young.disposed == "expired"


def test_prune_closes_expired_idle_items_now() -> None:
    clock = FakeClock()
    pool = FakePool(3, max_idle_time=10, clock=clock)
    leases = [pool.acquire() for _ in range(2)]
    for lease in leases:
        lease.release()
    assert pool.prune() == 0
    clock.now += 11
    assert pool.prune() == 2
    assert pool.idle == 0 and pool.in_use == 0


def test_prune_without_expiry_closes_nothing() -> None:
    pool = FakePool(3)
    pool.acquire().release()
    assert pool.prune() == 0
    assert pool.idle == 1


class Probed(FakePool):
    def __init__(self, **kwargs: object) -> None:
        self.probes: list[Item] = []
        super().__init__(2, **kwargs)  # type: ignore[arg-type]

    def check_out(self, obj: Item) -> bool:
        self.probes.append(obj)
        return super().check_out(obj)


def test_an_idle_item_is_probed_only_after_verify_after() -> None:
    clock = FakeClock()
    pool = Probed(verify_after=1.0, clock=clock)
    pool.acquire().release()
    clock.advance(0.5)
    with pool.acquire():
        pass
    assert pool.probes == []  # returned moments ago: handed out as is
    clock.advance(1.0)
    with pool.acquire() as lease:
        assert pool.probes == [lease.resource]


def test_an_expired_item_is_replaced_without_a_probe() -> None:
    clock = FakeClock()
    pool = Probed(verify_after=1.0, max_idle_time=30, clock=clock)
    pool.acquire().release()
    clock.advance(31)
    with pool.acquire() as lease:
        assert lease.resource.number == 1
    assert pool.probes == []
    assert pool.created[0].disposed == "expired"
