"""With the GIL, plain checkouts and returns take no lock; without it, every one does."""

from __future__ import annotations

import threading
from types import TracebackType

import pytest

from tests.support.fake_pools import FakePool, force_no_gil


class CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.taken += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.release()


def counted(pool: FakePool) -> CountingLock:
    lock = CountingLock()
    pool._lock = lock  # type: ignore[assignment]  (white box: the shell's lock)
    return lock


def test_under_the_gil_a_plain_checkout_and_return_take_no_lock() -> None:
    pool = FakePool(2, preload=2)
    lock = counted(pool)
    for _ in range(10):
        pool.acquire().release()
    assert lock.taken == 0


def test_without_the_gil_every_checkout_and_return_decides_under_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    force_no_gil(monkeypatch)
    pool = FakePool(2, preload=2)
    lock = counted(pool)
    for n in range(1, 11):
        lease = pool.acquire()
        assert lock.taken == 2 * n - 1
        lease.release()
        assert lock.taken == 2 * n
    assert (pool.in_use, pool.idle, len(pool.created)) == (0, 2, 2)


def test_without_the_gil_a_pool_still_lends_last_in_first_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    force_no_gil(monkeypatch)
    pool = FakePool(3)
    leases = [pool.acquire() for _ in range(3)]
    items = [lease.resource for lease in leases]
    for lease in leases:
        lease.release()
    assert [pool.acquire().resource for _ in range(3)] == items[::-1]
