"""The generic pool lends and takes back items; what a lease is (fake items, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pools
from broker.errors import BrokerConnectionError, ConfigurationError
from pools import ResourceReleased
from tests.support.fake_pools import FakePool, Item, gil_mode, idle_items  # noqa: F401

pytestmark = pytest.mark.usefixtures("gil_mode")


@pytest.fixture
def pool() -> Iterator[FakePool]:
    p = FakePool(3)
    yield p
    p.close()


def test_items_are_created_on_demand_and_reused(pool: FakePool) -> None:
    with pool.acquire() as lease:
        first = lease.resource
    with pool.acquire() as lease:
        assert lease.resource is first
    assert len(pool.created) == 1


def test_idle_items_are_handed_out_last_in_first_out(pool: FakePool) -> None:
    a, b, c = pool.acquire(), pool.acquire(), pool.acquire()
    items = [a.resource, b.resource, c.resource]
    for lease in (a, b, c):
        lease.release()
    assert idle_items(pool) == items
    assert [pool.acquire().resource for _ in range(3)] == items[::-1]


def test_lease_forwards_attributes_to_the_item(pool: FakePool) -> None:
    lease = pool.acquire()
    assert lease.ping() == "pong 0"
    assert lease.number == 0
    assert lease.pool is pool
    with pytest.raises(AttributeError):
        lease._private  # noqa: B018
    lease.release()
    assert lease.is_released
    with pytest.raises(ResourceReleased, match="released"):
        lease.ping()
    with pytest.raises(ResourceReleased):
        lease.resource  # noqa: B018


def test_lease_repr_shows_its_item_until_released(pool: FakePool) -> None:
    lease = pool.acquire()
    assert repr(lease) == "<Lease of <Item 0>>"
    lease.release()
    assert repr(lease) == "<Lease released>"


def test_limit_none_means_the_global_default() -> None:
    assert pools.get_limit() == pools.DEFAULT_LIMIT == 10
    p = FakePool()
    assert p.limit == 10


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_bad_limits_are_configuration_errors(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        FakePool(bad)  # type: ignore[arg-type]


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="preload=5 is larger than limit=2"):
        FakePool(2, preload=5)
    with pytest.raises(ConfigurationError, match="preload"):
        FakePool(2, preload=-1)
    with pytest.raises(ConfigurationError, match="max_idle_time"):
        FakePool(2, max_idle_time=0)
    with pytest.raises(ConfigurationError, match="max_lifetime"):
        FakePool(2, max_lifetime="1")
    p = FakePool(1)
    p.acquire()
    with pytest.raises(ConfigurationError, match="timeout"):
        p.acquire(block=True, timeout=-1)


def test_preload_creates_items_in_the_constructor() -> None:
    p = FakePool(4, preload=3)
    assert len(p.created) == 3
    assert (p.in_use, p.idle) == (0, 3)


def test_preload_failure_propagates_and_closes_what_was_made() -> None:
    class Flaky(FakePool):
        def create_resource(self) -> Item:
            if len(self.created) == 2:
                raise BrokerConnectionError("refused")
            return super().create_resource()

    with pytest.raises(BrokerConnectionError):
        Flaky(4, preload=3)


def test_repr_shows_the_counts(pool: FakePool) -> None:
    held = pool.acquire()
    pool.acquire().release()
    assert repr(pool) == "<FakePool limit=3 in_use=1 idle=1 waiting=0>"
    held.release()
    pool.close()
    assert repr(pool) == "<FakePool limit=3 in_use=0 idle=0 waiting=0 closed>"


# -- returning ------------------------------------------------------------------------


def test_releasing_twice_is_a_no_op(pool: FakePool) -> None:
    lease = pool.acquire()
    lease.release()
    lease.release()
    pool.release(lease)
    assert (pool.in_use, pool.idle) == (0, 1)


def test_release_inside_with_then_exit_returns_once(pool: FakePool) -> None:
    with pool.acquire() as lease:
        lease.release()
    assert (pool.in_use, pool.idle) == (0, 1)


def test_a_stale_lease_cannot_release_the_next_borrowers_item(pool: FakePool) -> None:
    first = pool.acquire()
    item = first.resource
    first.release()
    second = pool.acquire()
    assert second.resource is item
    first.release()  # stale: must not give back the item now lent to `second`
    assert (pool.in_use, pool.idle) == (1, 0)
    second.release()
    assert (pool.in_use, pool.idle) == (0, 1)


def test_pool_release_takes_leases_only(pool: FakePool) -> None:
    lease = pool.acquire()
    with pytest.raises(ConfigurationError, match="lease"):
        pool.release(lease.resource)
    with pytest.raises(ConfigurationError, match="not acquired from"):
        FakePool(1).release(lease)
    pool.release(lease)
    assert pool.idle == 1


def test_pool_discard_disposes_of_a_lease_item(pool: FakePool) -> None:
    lease = pool.acquire()
    item = lease.resource
    pool.discard(lease)
    assert item.disposed == "broken"
    assert (pool.in_use, pool.idle) == (0, 0)
