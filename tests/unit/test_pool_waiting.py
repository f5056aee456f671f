"""At the limit: raising, waiting, timeouts and the fairness window.

The waits and timeouts run on a fake clock with fake gates (see
tests/support/fake_pools.py): nothing sleeps, and what happens while a caller
waits is scripted. The threaded tests wait for events, never for time.
"""

from __future__ import annotations

import threading

import pytest

from broker.errors import ConfigurationError, LimitExceeded
from pools import Lease
from pools.waiting import closed_gate
from tests.support.fake_pools import (
    FakeClock,
    FakeGates,
    FakePool,
    Item,
    Progress,
    WatchedGates,
    gil_mode,  # noqa: F401
)

pytestmark = pytest.mark.usefixtures("gil_mode")


def fake_pool(limit: int, **kwargs: object) -> tuple[FakePool, FakeClock, FakeGates]:
    clock = FakeClock()
    gates = FakeGates(clock)
    return FakePool(limit, clock=clock, gate_factory=gates, **kwargs), clock, gates


# -- raising and timing out ------------------------------------------------------------


def test_at_the_limit_acquire_raises_at_once() -> None:
    pool, clock, gates = fake_pool(3)
    held = [pool.acquire() for _ in range(3)]
    with pytest.raises(LimitExceeded, match="limit of 3 reached"):
        pool.acquire()
    assert (gates.made, clock.now) == ([], 1000.0)  # it never waited
    item = held[0].resource
    held[0].release()
    assert pool.acquire().resource is item


def test_blocking_acquire_times_out_after_the_timeout() -> None:
    pool, clock, gates = fake_pool(3)
    for _ in range(3):
        pool.acquire()
    with pytest.raises(LimitExceeded, match=r"waited 0\.2 s"):
        pool.acquire(block=True, timeout=0.2)
    assert gates.sleeps == [pytest.approx(0.2)]  # one sleep, for the whole timeout
    assert clock.now == pytest.approx(1000.2)
    assert pool.waiting == 0


def test_blocking_acquire_with_zero_timeout_raises_at_once() -> None:
    pool, clock, gates = fake_pool(3)
    for _ in range(3):
        pool.acquire()
    with pytest.raises(LimitExceeded):
        pool.acquire(block=True, timeout=0)
    assert (gates.sleeps, clock.now, pool.waiting) == ([], 1000.0, 0)


@pytest.mark.parametrize("timeout", [float("nan"), -1, "1", True])
@pytest.mark.parametrize("full", [False, True], ids=["idle-item", "full-pool"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_refused_at_once(
    timeout: object, full: bool
) -> None:
    pool, _clock, gates = fake_pool(1)
    if full:
        pool.acquire()
    else:
        pool.acquire().release()  # an idle item: the timeout would not even be needed
    with pytest.raises(ConfigurationError, match=r"timeout must be"):
        pool.acquire(block=True, timeout=timeout)  # type: ignore[arg-type]
    assert (gates.sleeps, pool.waiting) == ([], 0)


def test_a_waiter_woken_for_nothing_waits_out_the_rest_of_its_timeout() -> None:
    pool, clock, gates = fake_pool(1)
    held = pool.acquire()

    def another_caller_takes_it_first() -> None:
        clock.advance(0.001)
        held.release()  # within the fairness window: the waiter is told...
        pool.acquire()  # ...but a running caller takes the item first

    gates.meanwhile = [another_caller_takes_it_first]
    with pytest.raises(LimitExceeded, match=r"waited 0\.5 s"):
        pool.acquire(block=True, timeout=0.5)
    assert gates.sleeps == [pytest.approx(0.5), pytest.approx(0.499)]
    assert clock.now == pytest.approx(1000.5)


# -- being served -------------------------------------------------------------------------


def test_blocking_acquire_without_timeout_waits_for_a_release() -> None:
    pool, _, gates = fake_pool(3)
    held = [pool.acquire() for _ in range(3)]
    item = held[1].resource
    gates.meanwhile = [held[1].release]
    assert pool.acquire(block=True).resource is item
    assert pool.in_use == 3


def test_blocking_acquire_waits_for_a_release_in_another_thread() -> None:
    gates = WatchedGates()
    pool = FakePool(3, gate_factory=gates)
    held = [pool.acquire() for _ in range(3)]
    got: list[Item] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(block=True).resource))
    waiter.start()
    gates.wait_for(lambda: pool.waiting == 1)
    item = held[1].resource
    held[1].release()
    waiter.join(5)
    assert got == [item]
    assert pool.in_use == 3


def test_waiters_are_served_in_arrival_order() -> None:
    gates = WatchedGates()
    pool = FakePool(1, gate_factory=gates)
    held = pool.acquire()
    order: list[int] = []

    def waiter(i: int) -> None:
        with pool.acquire(block=True, timeout=10):
            order.append(i)

    threads = []
    for i in range(6):
        thread = threading.Thread(target=waiter, args=(i,))
        thread.start()
        threads.append(thread)
        gates.wait_for(lambda n=i + 1: pool.waiting == n)
    held.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6))
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 1, 1)


def test_items_released_one_by_one_go_to_the_earliest_waiters() -> None:
    gates = WatchedGates()
    progress = Progress()
    pool = FakePool(3, gate_factory=gates)
    held = [pool.acquire() for _ in range(3)]
    got: dict[int, Lease[Item]] = {}
    go = threading.Event()

    def waiter(i: int) -> None:
        lease = pool.acquire(block=True, timeout=10)
        progress.note(lambda: got.__setitem__(i, lease))
        go.wait(10)
        lease.release()

    threads = []
    for i in range(5):
        thread = threading.Thread(target=waiter, args=(i,))
        thread.start()
        threads.append(thread)
        gates.wait_for(lambda n=i + 1: pool.waiting == n)
    for released, lease in enumerate(held, start=1):
        lease.release()
        progress.wait_for(lambda n=released: len(got) == n)
        assert set(got) == set(range(released))
    go.set()
    for thread in threads:
        thread.join(10)
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert len(pool.created) == 3


def acquire_into(pool: FakePool, got: list[Lease[Item]], progress: Progress) -> None:
    lease = pool.acquire(block=True)
    progress.note(lambda: got.append(lease))


@pytest.mark.parametrize("returns", ["pushed", "handed over", "pushed, then handed over"])
def test_every_returned_item_reaches_a_waiter(returns: str) -> None:
    # Three items come back in a burst while six threads wait without a
    # timeout and keep what they get: exactly three waiters must be served,
    # and nothing else will wake a waiter that was not told. The items are
    # pushed onto the stack (the first waiter is notified and takes one, then
    # must notify the next), handed straight to the waiters, or first pushed
    # and then, the fairness window over, handed to the waiter that was just
    # notified (the next one must then be told about the pushed item). The
    # fake clock says when the window is over.
    clock = FakeClock()
    gates = WatchedGates()
    progress = Progress()
    pool = FakePool(3, clock=clock, gate_factory=gates)
    for _ in range(10):
        held = [pool.acquire() for _ in range(3)]
        got: list[Lease[Item]] = []
        threads = []
        for i in range(6):
            thread = threading.Thread(target=acquire_into, args=(pool, got, progress), daemon=True)
            thread.start()
            threads.append(thread)
            gates.wait_for(lambda n=i + 1: pool.waiting == n)
        if returns == "handed over":
            clock.advance(1.0)
        for n, lease in enumerate(held):
            if n == 1 and returns == "pushed, then handed over":
                clock.advance(1.0)
            lease.release()
        progress.wait_for(lambda got=got: len(got) == 3)
        assert pool.waiting == 3
        for lease in list(got):
            lease.release()
        for thread in threads:
            thread.join(5)
        assert len(got) == 6 and pool.waiting == 0
        for lease in got:
            lease.release()
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 3, 3)


# -- the fairness window --------------------------------------------------------------------


def test_a_caller_that_gives_back_and_retakes_at_once_cannot_starve_a_waiter() -> None:
    # The hog gives the item back and takes it again at once, 2 ms apart.
    # While the waiter has waited less than the fairness window (5 ms) the
    # hog may overtake it; after that the return goes straight to the waiter
    # and the hog has to queue.
    pool, clock, gates = fake_pool(1)
    hog: list[Lease[Item] | None] = [pool.acquire()]
    overtook: list[bool] = []

    def hog_round() -> None:
        clock.advance(0.002)
        lease = hog[0]
        assert lease is not None
        lease.release()
        try:
            hog[0] = pool.acquire()
        except LimitExceeded:
            hog[0] = None
        overtook.append(hog[0] is not None)

    gates.meanwhile = [hog_round] * 10
    with pool.acquire(block=True, timeout=5) as lease:
        assert lease.resource.number == 0
    assert overtook == [True, True, False]
    assert clock.now == pytest.approx(1000.006)


@pytest.mark.parametrize("interrupted", ["while queued", "after being served"])
def test_a_waiter_interrupted_by_an_exception_leaves_nothing_behind(interrupted: str) -> None:
    # A KeyboardInterrupt (or any exception) raised in a waiting thread must
    # not leave a dead waiter at the head of the queue, nor lose an item that
    # was handed to it just before.
    held: list[Lease[Item]] = []

    class InterruptedGate:
        def __init__(self) -> None:
            self.gate = closed_gate()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if interrupted == "after being served":
                held[0].release()  # goes straight to the waiter (fairness_window=0)
            raise KeyboardInterrupt

        def release(self) -> None:
            self.gate.release()

    pool = FakePool(1, fairness_window=0.0, gate_factory=InterruptedGate)
    held.append(pool.acquire())
    item = held[0].resource
    with pytest.raises(KeyboardInterrupt):
        pool.acquire(block=True, timeout=5)
    assert pool.waiting == 0
    if interrupted == "while queued":
        held[0].release()
    assert (pool.in_use, pool.idle) == (0, 1)
    with pool.acquire(block=True, timeout=5) as lease:
        assert lease.resource is item
