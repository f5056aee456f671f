"""kombu's way to change a pool's limit: ``pool.limit = n`` and ``set_limit(n, force=False)``.

``resize(n)`` never refuses (borrowers keep their items, which are closed as
they come back); kombu's ``set_limit`` refuses to go below the items borrowed
with a ``RuntimeError`` unless ``force=True``. Both are one decision of
:class:`pools.decide.PoolState`.
"""

from __future__ import annotations

import pytest

import pools
from broker import Connection
from broker.errors import BrokerError, ConfigurationError
from pools import PoolInUse
from pools.decide import Outcome, PoolState, Ticket
from tests.support.fake_pools import FakePool


def test_the_limit_is_assignable() -> None:
    pool = FakePool(2)

    pool.limit = 5

    assert pool.limit == 5
    assert repr(pool).startswith("<FakePool limit=5 ")


def test_lowering_to_the_items_borrowed_or_more_closes_idle_ones() -> None:
    pool = FakePool(4)
    leases = [pool.acquire() for _ in range(3)]
    leases.pop().release()

    pool.set_limit(2)

    assert (pool.limit, pool.in_use, pool.idle) == (2, 2, 0)
    assert [reason for _, reason in pool.disposed] == ["shrink"]


def test_lowering_below_the_items_borrowed_is_refused_and_changes_nothing() -> None:
    pool = FakePool(3)
    leases = [pool.acquire() for _ in range(3)]

    with pytest.raises(PoolInUse, match="from 3 to 1 below the 3 items borrowed"):
        pool.set_limit(1)
    with pytest.raises(RuntimeError):  # kombu's class
        pool.limit = 2

    assert (pool.limit, pool.in_use) == (3, 3)
    assert isinstance(PoolInUse("x"), BrokerError)
    for lease in leases:
        lease.release()
    assert pool.idle == 3


def test_force_lowers_the_limit_and_retires_borrowed_items_as_they_come_back() -> None:
    pool = FakePool(3)
    leases = [pool.acquire() for _ in range(3)]

    pool.set_limit(1, force=True)

    assert pool.limit == 1 and pool.disposed == []  # nothing taken from its borrower
    for lease in leases:
        lease.release()
    assert (pool.in_use, pool.idle) == (0, 1)
    assert [reason for _, reason in pool.disposed] == ["shrink", "shrink"]


def test_a_bad_limit_is_a_configuration_error_either_way() -> None:
    pool = FakePool(2)
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ConfigurationError):
            pool.limit = bad  # type: ignore[assignment]
    assert pool.limit == 2


def test_the_decision_refuses_only_with_keep_borrowed() -> None:
    state: PoolState[str, Ticket] = PoolState(3, pid=1)
    for obj in ("a", "b"):
        assert state.acquire(False, 0.0).outcome is Outcome.CREATE
        state.created(obj, 0.0)

    assert state.resize(1, keep_borrowed=True).outcome is Outcome.REFUSED
    assert state.limit == 3
    assert state.resize(2, keep_borrowed=True).outcome is Outcome.NOTHING
    assert state.resize(1).outcome is Outcome.NOTHING
    assert state.limit == 1


def test_module_set_limit_refuses_for_a_busy_group_pool_unless_forced() -> None:
    conn = Connection("memory://")
    pool = pools.connections[conn]
    leases = [pool.acquire() for _ in range(3)]

    with pytest.raises(PoolInUse):
        pools.set_limit(2)
    assert pools.get_limit() == pools.DEFAULT_LIMIT  # the default is set last

    assert pools.set_limit(2, force=True) == 2
    assert pool.limit == pools.get_limit() == 2
    for lease in leases:
        lease.release()
    assert pool.in_use + pool.idle == 2
