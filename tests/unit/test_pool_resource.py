"""The generic pool (pools.resource.ResourcePool) with fake items: no I/O, fake clocks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pools
from broker.errors import (
    BrokerConnectionError,
    ConfigurationError,
    LimitExceeded,
)
from pools import Lease, PoolClosed, ResourcePool, ResourceReleased


class Item:
    """A fake pooled object that remembers how it was disposed of."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.healthy = True
        self.disposed: str | None = None
        self.pid = os.getpid()

    def ping(self) -> str:
        return f"pong {self.number}"

    def __repr__(self) -> str:
        return f"<Item {self.number}>"


class FakePool(ResourcePool[Item]):
    def __init__(self, limit: int | None = None, **kwargs: object) -> None:
        self.created: list[Item] = []
        self.disposed: list[tuple[Item, str]] = []
        self.fail_creation: BaseException | None = None  # raised once, then cleared
        super().__init__(limit, **kwargs)  # type: ignore[arg-type]

    def create_resource(self) -> Item:
        exc, self.fail_creation = self.fail_creation, None
        if exc is not None:
            raise exc
        item = Item(len(self.created))
        self.created.append(item)
        return item

    def dispose_resource(self, obj: Item, reason: str) -> None:
        # Only an item torn down by force_close_all() is disposed of twice:
        # once when forced, once (closed) when its borrower gives it back.
        assert obj.disposed is None or (obj.disposed == "forced" and reason == "closed"), (
            f"{obj} disposed twice: {obj.disposed}, then {reason}"
        )
        obj.disposed = reason
        self.disposed.append((obj, reason))

    def check_out(self, obj: Item) -> bool:
        return obj.healthy

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokerConnectionError)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def idle_items(pool: FakePool) -> list[Item]:
    """Idle items, bottom of the stack first."""
    return [entry.obj for entry in pool._idle]


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


@pytest.fixture
def pool() -> Iterator[FakePool]:
    p = FakePool(3)
    yield p
    p.close()


# -- basics ------------------------------------------------------------------------


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
    with pytest.raises(AttributeError):
        lease._private  # noqa: B018
    lease.release()
    assert lease.is_released
    with pytest.raises(ResourceReleased, match="released"):
        lease.ping()
    with pytest.raises(ResourceReleased):
        lease.resource  # noqa: B018


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


# -- limit, blocking and timeouts ----------------------------------------------------


def test_at_the_limit_acquire_raises_at_once(pool: FakePool) -> None:
    held = [pool.acquire() for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match="limit of 3 reached"):
        pool.acquire()
    assert time.monotonic() - started < 0.1
    item = held[0].resource
    held[0].release()
    assert pool.acquire().resource is item


def test_blocking_acquire_times_out_after_about_the_timeout(pool: FakePool) -> None:
    for _ in range(3):
        pool.acquire()
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"waited 0\.2 s"):
        pool.acquire(block=True, timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 1.0
    assert pool.waiting == 0


def test_blocking_acquire_with_zero_timeout_raises_at_once(pool: FakePool) -> None:
    for _ in range(3):
        pool.acquire()
    with pytest.raises(LimitExceeded):
        pool.acquire(block=True, timeout=0)


def test_blocking_acquire_without_timeout_waits_for_a_release(pool: FakePool) -> None:
    held = [pool.acquire() for _ in range(3)]
    got: list[Item] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(block=True).resource))
    waiter.start()
    wait_until(lambda: pool.waiting == 1)
    item = held[1].resource
    held[1].release()
    waiter.join(5)
    assert got == [item]
    assert pool.in_use == 3


def test_waiters_are_served_in_arrival_order() -> None:
    pool = FakePool(1)
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
        wait_until(lambda n=i + 1: pool.waiting == n)
    held.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6))
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 1, 1)


def test_items_released_one_by_one_go_to_the_earliest_waiters() -> None:
    pool = FakePool(3)
    held = [pool.acquire() for _ in range(3)]
    got: dict[int, Lease[Item]] = {}
    go = threading.Event()

    def waiter(i: int) -> None:
        lease = pool.acquire(block=True, timeout=10)
        got[i] = lease
        go.wait(10)
        lease.release()

    threads = []
    for i in range(5):
        thread = threading.Thread(target=waiter, args=(i,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=i + 1: pool.waiting == n)
    for released, lease in enumerate(held, start=1):
        lease.release()
        wait_until(lambda n=released: len(got) == n)
        assert set(got) == set(range(released))
    go.set()
    for thread in threads:
        thread.join(10)
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert len(pool.created) == 3


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


def test_a_thread_that_gives_back_and_retakes_at_once_cannot_starve_a_waiter() -> None:
    # The hog holds the item while it sleeps (so the waiter runs only then,
    # and finds nothing) and takes it back the moment it returned it. Only
    # the fairness window ends this: once the waiter has waited that long, the
    # return goes straight to it and the hog has to queue.
    pool = FakePool(1)
    stop = threading.Event()
    hog_rounds = 0

    def hog() -> None:
        nonlocal hog_rounds
        while not stop.is_set():
            with pool.acquire(block=True, timeout=10):
                hog_rounds += 1
                time.sleep(0.0005)

    hogger = threading.Thread(target=hog, daemon=True)
    hogger.start()
    wait_until(lambda: hog_rounds > 10)
    try:
        with pool.acquire(block=True, timeout=5) as lease:
            assert lease.resource.number == 0
    finally:
        stop.set()
        hogger.join(10)


def test_threads_with_timeouts_discards_and_resizes_keep_the_books_straight() -> None:
    import random

    pool = FakePool(4)
    lock = threading.Lock()
    out = peak = timeouts = 0
    failures: list[BaseException] = []
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
                    time.sleep(0)
                with lock:
                    out -= 1
                lease.discard() if rng.random() < 0.05 else lease.release()
        except BaseException as exc:
            failures.append(exc)

    def resizer() -> None:
        rng = random.Random(99)
        while not stop_resizing.is_set():
            pool.resize(rng.randint(1, 6))
            time.sleep(0.002)
        pool.resize(4)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
    resizing = threading.Thread(target=resizer)
    resizing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop_resizing.set()
    resizing.join(10)
    assert not failures, failures[:3]
    assert not any(t.is_alive() for t in threads)
    assert (pool.in_use, pool.waiting) == (0, 0)
    assert pool.idle <= 4 and len(pool._entries) == pool.idle
    assert peak <= 6
    assert timeouts > 0  # the timeout paths were exercised
    live = {id(entry.obj) for entry in pool._idle}
    assert all(item.disposed is None for item in pool.created if id(item) in live)


# -- the lock-free checkout and return, under contention ---------------------------------
#
# Idle items are taken and put back without the pool lock (see pools.lease.Waiter
# for the protocol). These tests make threads switch very often, so that the
# interleavings the protocol must survive actually happen, and check that no
# wake-up is lost, no item is lent twice and close/force_close_all/resize racing
# with returns keep the books straight.


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Make the interpreter switch threads every few bytecodes, for this test only."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def run_threads(target: object, count: int, join_timeout: float = 30.0) -> None:
    """Run ``target(i)`` in ``count`` threads; fail (instead of hanging) if any gets stuck."""
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} threads stuck: a lost wake-up?"
    assert not failures, failures[:3]


@pytest.mark.parametrize("limit", [1, 2])
@pytest.mark.parametrize(
    ("window", "timeout"), [(0.0, None), (0.0005, None), (10.0, None), (0.0, 1.0), (0.005, 1.0)]
)
def test_no_wake_up_is_lost(
    busy_switching: None, limit: int, window: float, timeout: float | None
) -> None:
    # Window 0: every return goes straight to the first waiter (under the
    # lock); 10 s: every return is a lock-free push that notifies the first
    # waiter; 0.5 ms and the default 5 ms: both, switching all the time. Items
    # are held for microseconds, so a waiter gets one long before a 1 s timeout
    # unless it sleeps through a return; without a timeout it would hang.
    pool = FakePool(limit)
    pool.fairness_window = window  # type: ignore[misc]

    def worker(i: int) -> None:
        for _ in range(300):
            with pool.acquire(block=True, timeout=timeout):
                pass

    run_threads(worker, 12)
    assert (pool.in_use, pool.waiting) == (0, 0)
    assert pool.idle == len(pool.created) <= limit


def test_an_item_returned_just_before_a_waiter_queues_is_not_missed() -> None:
    # The interleaving the "queue first, look second" rule exists for: the
    # waiter found the stack empty and is about to queue when the item comes
    # back; the releaser looks at the queue before the waiter is in it, so it
    # notifies no one. The waiter must find the item when it looks after queueing.
    import collections

    pool = FakePool(1)
    held = pool.acquire()
    item = held.resource

    class ReleaseFirst(collections.deque):  # type: ignore[type-arg]
        def append(self, waiter: object) -> None:
            releaser = threading.Thread(target=held.release, daemon=True)  # (takes no lock)
            releaser.start()
            releaser.join(5)
            super().append(waiter)

    pool._waiters = ReleaseFirst()
    got: list[Item] = []
    waiter = threading.Thread(
        target=lambda: got.append(pool.acquire(block=True).resource), daemon=True
    )
    waiter.start()
    waiter.join(5)
    assert not waiter.is_alive(), "the waiter slept through an idle item"
    assert got == [item]


def acquire_into(pool: FakePool, got: list[Lease[Item]]) -> None:
    got.append(pool.acquire(block=True))


@pytest.mark.parametrize("returns", ["pushed", "handed over", "pushed, then handed over"])
def test_every_returned_item_reaches_a_waiter(returns: str) -> None:
    # Three items come back in a burst while six threads wait without a
    # timeout and keep what they get: exactly three waiters must be served,
    # and nothing else will wake a waiter that was not told. The items are
    # pushed onto the stack (the first waiter is notified and takes one, then
    # must notify the next), handed straight to the waiters, or first pushed
    # and then, the fairness window over, handed to the waiter that was just
    # notified (the next one must then be told about the pushed item).
    pool = FakePool(3)
    for _ in range(10):
        held = [pool.acquire() for _ in range(3)]
        got: list[Lease[Item]] = []
        threads = []
        for i in range(6):
            thread = threading.Thread(target=acquire_into, args=(pool, got), daemon=True)
            thread.start()
            threads.append(thread)
            wait_until(lambda n=i + 1: pool.waiting == n)
        pool.fairness_window = 0.0 if returns == "handed over" else 10.0  # type: ignore[misc]
        for n, lease in enumerate(held):
            if n == 1 and returns == "pushed, then handed over":
                pool.fairness_window = 0.0  # type: ignore[misc]
            lease.release()
        wait_until(lambda got=got: len(got) == 3)
        assert pool.waiting == 3
        for lease in list(got):
            lease.release()
        for thread in threads:
            thread.join(5)
        assert len(got) == 6 and pool.waiting == 0
        for lease in got:
            lease.release()
        del pool.fairness_window
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 3, 3)


@pytest.mark.parametrize("admin", ["force_close_all", "close", "shrink"])
def test_an_item_returned_as_the_pool_changes_is_never_lent_again(admin: str) -> None:
    # The interleaving the checks after a lock-free push and after a lock-free
    # pop exist for: a return passes its checks, then force_close_all(),
    # close() or a shrink runs, then the item lands on the stack, and another
    # thread takes it off before the releaser looks again.
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

    pool._idle = Interleaved()
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


@pytest.mark.parametrize("interrupted", ["while queued", "after being served"])
def test_a_waiter_interrupted_by_an_exception_leaves_nothing_behind(
    interrupted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A KeyboardInterrupt (or any exception) raised in a waiting thread must
    # not leave a dead waiter at the head of the queue, nor lose an item that
    # was handed to it just before.
    import pools.lease

    pool = FakePool(1)
    held = pool.acquire()
    item = held.resource

    class Interrupted(pools.lease.Waiter):
        def __init__(self, lease: Lease[Item]) -> None:
            super().__init__(lease)
            real_gate = self.gate

            class Gate:
                def acquire(self, *args: object, **kwargs: object) -> bool:
                    if interrupted == "after being served":
                        held.release()  # goes straight to us (see fairness_window)
                    raise KeyboardInterrupt

                def release(self) -> None:
                    real_gate.release()

            self.gate = Gate()  # type: ignore[assignment]

    monkeypatch.setattr(pools.resource, "Waiter", Interrupted)
    pool.fairness_window = 0.0  # type: ignore[misc]
    with pytest.raises(KeyboardInterrupt):
        pool.acquire(block=True, timeout=5)
    monkeypatch.undo()
    assert pool.waiting == 0
    if interrupted == "while queued":
        held.release()
    assert (pool.in_use, pool.idle) == (0, 1)
    with pool.acquire(block=True, timeout=5) as lease:
        assert lease.resource is item


def test_racing_releases_of_one_lease_return_it_once(busy_switching: None) -> None:
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


def test_no_item_is_lent_twice_under_contention(busy_switching: None) -> None:
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
                time.sleep(0)
            with lock:
                del holders[key]
            lease.release()

    run_threads(worker, 16)
    assert peak <= 3
    assert len(pool.created) <= 3


def test_close_racing_with_returns_closes_every_item(busy_switching: None) -> None:
    pool = FakePool(4)
    started = threading.Barrier(9)

    def worker(i: int) -> None:
        started.wait(5)
        while True:
            try:
                lease = pool.acquire(block=True, timeout=10)
            except PoolClosed:
                return
            lease.release()

    closer = threading.Thread(
        target=lambda: (started.wait(5), time.sleep(0.05), pool.close()), daemon=True
    )
    closer.start()
    run_threads(worker, 8)
    closer.join(5)
    assert (pool.in_use, pool.idle, pool.waiting) == (0, 0, 0)
    assert pool.created, "nothing was ever made"
    assert all(item.disposed == "closed" for item in pool.created), pool.disposed


def test_force_close_all_and_resize_racing_with_returns_keep_the_books(
    busy_switching: None,
) -> None:
    pool = FakePool(4)
    stop = threading.Event()

    def worker(i: int) -> None:
        while not stop.is_set():
            with pool.acquire(block=True, timeout=10) as lease:
                assert lease.resource.disposed in (None, "forced")

    def admin() -> None:
        for n in range(40):
            pool.force_close_all() if n % 2 else pool.resize(1 + n % 5)
            time.sleep(0.002)
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
    assert {entry.obj for entry in pool._entries} == set(idle)


# -- returning, double release, broken items ----------------------------------------


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


def test_failed_creation_gives_the_slot_back() -> None:
    pool = FakePool(1)
    pool.fail_creation = BrokerConnectionError("refused")
    with pytest.raises(BrokerConnectionError):
        pool.acquire()
    assert pool.in_use == 0
    pool.fail_creation = None
    assert pool.acquire().resource.number == 0


def test_failed_creation_wakes_the_next_waiter() -> None:
    pool = FakePool(1)
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
        wait_until(lambda n=i + 1: pool.waiting == n)
    pool.fail_creation = BrokerConnectionError("refused")
    held.discard()  # frees the slot: the first waiter tries to create and fails...
    for thread in threads:  # ...and gives the slot to the second, which succeeds
        thread.join(5)
    assert isinstance(results[0], BrokerConnectionError)
    assert isinstance(results[1], Item)


# -- resize, force_close_all, close --------------------------------------------------


def test_growing_wakes_waiters(pool: FakePool) -> None:
    for _ in range(3):
        pool.acquire()
    got: list[Item] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(block=True).resource))
    waiter.start()
    wait_until(lambda: pool.waiting == 1)
    pool.resize(4)
    waiter.join(5)
    assert len(got) == 1 and pool.in_use == 4


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
    pool = FakePool(1)
    pool.acquire()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            pool.acquire(block=True, timeout=5)
        except PoolClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: pool.waiting == 1)
    pool.close()
    thread.join(5)
    assert len(errors) == 1 and "closed" in str(errors[0])


def test_pool_is_a_context_manager() -> None:
    with FakePool(2, preload=1) as p:
        assert p.idle == 1
    assert p.is_closed


# -- recycling with a fake clock -------------------------------------------------------


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


# -- fork --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_gets_or_closes_the_parents_items(pool: FakePool) -> None:
    pool.acquire().release()
    borrowed = pool.acquire()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never raise
        code = 0
        try:
            if (pool.in_use, pool.idle) != (0, 0):
                code = 10
            with pool.acquire() as lease:
                if lease.resource.pid != os.getpid() or len(pool.created) != 2:
                    code = 11
            borrowed.release()  # inherited: forgotten, never disposed of
            if pool.disposed or (pool.in_use, pool.idle) != (0, 1):
                code = 12
        except BaseException:
            code = 13
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (pool.in_use, pool.idle) == (1, 0)  # the parent is undisturbed
    borrowed.release()
    assert pool.disposed == []


# -- the stateful test ---------------------------------------------------------------------


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
        self.pool = FakePool(3)
        self.held: list[Lease[Item]] = []
        self.released: list[Lease[Item]] = []

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


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_pool_state_machine = PoolMachine.TestCase
