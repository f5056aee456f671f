"""Broken items are disposed of and replaced, never lent again; failed creation frees its slot."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from broker.errors import BrokerConnectionError
from tests.support.fake_pools import (
    FakeClock,
    FakeGates,
    FakePool,
    Item,
    WatchedGates,
    gil_mode,  # noqa: F401
    idle_items,
)

pytestmark = pytest.mark.usefixtures("gil_mode")


@pytest.fixture
def pool() -> Iterator[FakePool]:
    p = FakePool(3)
    yield p
    p.close()


def test_an_item_broken_inside_with_is_disposed_and_replaced(pool: FakePool) -> None:
    with pytest.raises(BrokerConnectionError), pool.acquire() as lease:
        broken = lease.resource
        raise BrokerConnectionError("reset by peer")
    assert broken.disposed == "broken"
    assert (pool.in_use, pool.idle) == (0, 0)
    with pool.acquire() as lease:
        assert lease.resource is not broken


def test_other_errors_inside_with_keep_the_item(pool: FakePool) -> None:
    with pytest.raises(ValueError), pool.acquire() as lease:
        item = lease.resource
        raise ValueError("application bug")
    assert item.disposed is None
    assert idle_items(pool) == [item]


def test_discard_disposes_of_the_item(pool: FakePool) -> None:
    lease = pool.acquire()
    item = lease.resource
    lease.discard()
    assert item.disposed == "broken"
    assert (pool.in_use, pool.idle) == (0, 0)


def test_an_idle_item_that_died_is_replaced_on_checkout(pool: FakePool) -> None:
    pool.acquire().release()
    dead = idle_items(pool)[0]
    dead.healthy = False
    with pool.acquire() as lease:
        assert lease.resource is not dead
    assert dead.disposed == "broken"
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 1, 2)


def test_a_probe_that_raises_frees_the_slot() -> None:
    class ProbeFails(FakePool):
        def check_out(self, obj: Item) -> bool:
            raise KeyboardInterrupt

    flaky = ProbeFails(1)
    flaky.acquire().release()
    with pytest.raises(KeyboardInterrupt):
        flaky.acquire()
    assert (flaky.in_use, flaky.idle) == (0, 0)
    assert flaky.created[0].disposed == "broken"


def test_failed_creation_gives_the_slot_back() -> None:
    pool = FakePool(1)
    pool.fail_creation = BrokerConnectionError("refused")
    with pytest.raises(BrokerConnectionError):
        pool.acquire()
    assert pool.in_use == 0
    pool.fail_creation = None
    assert pool.acquire().resource.number == 0


def test_failed_creation_for_a_waiter_gives_the_slot_back() -> None:
    clock = FakeClock()
    gates = FakeGates(clock)
    pool = FakePool(1, clock=clock, gate_factory=gates)
    held = pool.acquire()

    def the_holder_discards_it() -> None:
        pool.fail_creation = BrokerConnectionError("refused")
        held.discard()  # frees the slot: the waiter is served it, and creation fails

    gates.meanwhile = [the_holder_discards_it]
    with pytest.raises(BrokerConnectionError):
        pool.acquire(block=True, timeout=5)
    assert (pool.in_use, pool.idle, pool.waiting) == (0, 0, 0)


def test_failed_creation_wakes_the_next_waiter() -> None:
    gates = WatchedGates()
    pool = FakePool(1, gate_factory=gates)
    held = pool.acquire()
    results: list[object] = []

    def waiter() -> None:
        try:
            results.append(pool.acquire(block=True, timeout=5).resource)
        except BrokerConnectionError as exc:
            results.append(exc)

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for i, thread in enumerate(threads):
        thread.start()
        gates.wait_for(lambda n=i + 1: pool.waiting == n)
    pool.fail_creation = BrokerConnectionError("refused")
    held.discard()  # frees the slot: the first waiter tries to create and fails...
    for thread in threads:  # ...and gives the slot to the second, which succeeds
        thread.join(5)
    assert isinstance(results[0], BrokerConnectionError)
    assert isinstance(results[1], Item)
