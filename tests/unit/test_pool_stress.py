"""Many threads at once: no lost wake-up, no item lent twice, the books always straight.

The checkout and return take no lock under the GIL (see pools.waiting for the
protocol); these tests make threads switch very often, so that the
interleavings the protocol must survive actually happen, and run each test
also as on a free-threaded build, where every decision takes the lock. They
are bounded (every wait has a generous timeout, which is the failure when it
is reached) and assert nothing about speed. Admin threads pace themselves by
the workers' progress, not by the clock.
"""

from __future__ import annotations

import os
import random
import threading

import pytest

from broker.errors import LimitExceeded
from pools import Lease, PoolClosed
from tests.support.fake_pools import (
    FakePool,
    Item,
    Progress,
    busy_switching,  # noqa: F401
    gil_mode,  # noqa: F401
    idle_items,
    run_threads,
)

pytestmark = pytest.mark.usefixtures("gil_mode")


def test_threads_with_timeouts_discards_and_resizes_keep_the_books_straight() -> None:
    pool = FakePool(4)
    lock = threading.Lock()
    out = peak = timeouts = 0
    failures: list[BaseException] = []
    progress = Progress()
    done = [0]
    stop_resizing = threading.Event()

    def worker(seed: int) -> None:
        nonlocal out, peak, timeouts
        rng = random.Random(seed)
        try:
            for _ in range(1000):
                try:
                    lease = pool.acquire(block=True, timeout=rng.choice([None, 0, 0.001, 0.05]))
                except LimitExceeded:
                    with lock:
                        timeouts += 1
                    continue
                with lock:
                    out += 1
                    peak = max(peak, out)
                    assert lease.resource.disposed is None
                if rng.random() < 0.3:
                    os.sched_yield()
                with lock:
                    out -= 1
                lease.discard() if rng.random() < 0.05 else lease.release()
                if rng.random() < 0.05:
                    progress.note(lambda: done.__setitem__(0, done[0] + 1))
        except BaseException as exc:
            failures.append(exc)

    def resizer() -> None:
        rng = random.Random(99)
        while not stop_resizing.is_set():
            pool.resize(rng.randint(1, 6))
            mark = done[0]
            progress.wait_for(lambda mark=mark: done[0] > mark or stop_resizing.is_set())
        pool.resize(4)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
    resizing = threading.Thread(target=resizer)
    resizing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    progress.note(stop_resizing.set)
    resizing.join(10)
    assert not failures, failures[:3]
    assert not any(t.is_alive() for t in threads)
    assert (pool.in_use, pool.waiting) == (0, 0)
    assert pool.idle <= 4 and len(pool._state.entries) == pool.idle
    assert peak <= 6
    assert timeouts > 0  # the timeout paths were exercised
    live = {id(entry.obj) for entry in pool._state.idle}
    assert all(item.disposed is None for item in pool.created if id(item) in live)


def test_a_running_thread_cannot_starve_a_waiter() -> None:
    pool = FakePool(1)
    stop = threading.Event()
    served = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            with pool.acquire(block=True, timeout=10):
                pass

    hogger = threading.Thread(target=hog)
    hogger.start()
    try:
        with pool.acquire(block=True, timeout=5):
            served.set()
    finally:
        stop.set()
        hogger.join(10)
    assert served.is_set()


@pytest.mark.parametrize("limit", [1, 2])
@pytest.mark.parametrize(
    ("window", "timeout"), [(0.0, None), (0.0005, None), (10.0, None), (0.0, 1.0), (0.005, 1.0)]
)
@pytest.mark.usefixtures("busy_switching")
def test_no_wake_up_is_lost(limit: int, window: float, timeout: float | None) -> None:
    # Window 0: every return goes straight to the first waiter (under the
    # lock); 10 s: every return is a lock-free push that notifies the first
    # waiter; 0.5 ms and the default 5 ms: both, switching all the time. Items
    # are held for microseconds, so a waiter gets one long before a 1 s timeout
    # unless it sleeps through a return; without a timeout it would hang.
    pool = FakePool(limit, fairness_window=window)

    def worker(i: int) -> None:
        for _ in range(300):
            with pool.acquire(block=True, timeout=timeout):
                pass

    run_threads(worker, 12)
    assert (pool.in_use, pool.waiting) == (0, 0)
    assert pool.idle == len(pool.created) <= limit


@pytest.mark.usefixtures("busy_switching")
def test_racing_releases_of_one_lease_return_it_once() -> None:
    pool = FakePool(2)
    for _ in range(200):
        lease = pool.acquire()
        start = threading.Barrier(4)

        def release(i: int, lease: Lease[Item] = lease, start: threading.Barrier = start) -> None:
            start.wait(5)
            lease.release()

        run_threads(release, 4)
        assert (pool.in_use, pool.idle) == (0, 1)
    assert len(pool.created) == 1


@pytest.mark.usefixtures("busy_switching")
def test_no_item_is_lent_twice_under_contention() -> None:
    pool = FakePool(3)
    holders: dict[int, int] = {}
    lock = threading.Lock()
    peak = 0

    def worker(i: int) -> None:
        nonlocal peak
        for n in range(400):
            lease = pool.acquire(block=True, timeout=10)
            key = id(lease.resource)
            with lock:
                assert key not in holders, f"item lent to {holders[key]} and {i}"
                holders[key] = i
                peak = max(peak, len(holders))
            if n % 3 == 0:
                os.sched_yield()
            with lock:
                del holders[key]
            lease.release()

    run_threads(worker, 16)
    assert peak <= 3
    assert len(pool.created) <= 3


@pytest.mark.usefixtures("busy_switching")
def test_close_racing_with_returns_closes_every_item() -> None:
    pool = FakePool(4)
    progress = Progress()
    rounds = [0]

    def worker(i: int) -> None:
        while True:
            try:
                lease = pool.acquire(block=True, timeout=10)
            except PoolClosed:
                return
            lease.release()
            progress.note(lambda: rounds.__setitem__(0, rounds[0] + 1))

    def close_once_busy() -> None:
        progress.wait_for(lambda: rounds[0] >= 200)
        pool.close()

    closer = threading.Thread(target=close_once_busy, daemon=True)
    closer.start()
    run_threads(worker, 8)
    closer.join(5)
    assert (pool.in_use, pool.idle, pool.waiting) == (0, 0, 0)
    assert pool.created, "nothing was ever made"
    assert all(item.disposed == "closed" for item in pool.created), pool.disposed


@pytest.mark.usefixtures("busy_switching")
def test_force_close_all_and_resize_racing_with_returns_keep_the_books() -> None:
    pool = FakePool(4)
    stop = threading.Event()
    progress = Progress()
    rounds = [0]

    def worker(i: int) -> None:
        while not stop.is_set():
            with pool.acquire(block=True, timeout=10) as lease:
                assert lease.resource.disposed in (None, "forced")
            progress.note(lambda: rounds.__setitem__(0, rounds[0] + 1))

    def admin() -> None:
        for n in range(40):
            pool.force_close_all() if n % 2 else pool.resize(1 + n % 5)
            mark = rounds[0]
            progress.wait_for(lambda mark=mark: rounds[0] >= mark + 20)
        pool.resize(4)
        stop.set()

    admin_thread = threading.Thread(target=admin, daemon=True)
    admin_thread.start()
    run_threads(worker, 8)
    admin_thread.join(5)
    idle = idle_items(pool)
    assert (pool.in_use, pool.waiting) == (0, 0)
    assert len(idle) <= 4 and len({id(i) for i in idle}) == len(idle)
    assert all(item.disposed is None for item in idle)
    live = {id(i) for i in idle}
    assert all(item.disposed for item in pool.created if id(item) not in live)
    assert {entry.obj for entry in pool._state.entries} == set(idle)
