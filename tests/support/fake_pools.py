"""Fakes for the pool tests: items, a pool of them, a clock and gates that never sleep.

* :class:`FakePool` is a :class:`pools.ResourcePool` of :class:`Item` objects
  that records what it made and how it disposed of each item.
* :class:`FakeClock` is the pool's clock; :class:`FakeGates` is its gate
  factory: a wait with a timeout moves the clock on instead of sleeping, and
  a test can script what "happens meanwhile" (another caller returning an
  item, the clock moving on), so every wait and timeout runs in one thread,
  deterministically.
* :class:`WatchedGates` are real gates that tell a test when a waiter goes to
  sleep, so threaded tests wait for "n callers waiting" without polling.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from broker.errors import BrokerConnectionError
from pools import ResourcePool
from pools.waiting import closed_gate

__all__ = [
    "FakeClock",
    "FakeGates",
    "FakePool",
    "Item",
    "Progress",
    "WatchedGates",
    "busy_switching",
    "force_no_gil",
    "gil_mode",
    "idle_items",
    "run_threads",
]


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
    """Items numbered in creation order; ``fairness_window`` may be set per pool."""

    def __init__(
        self, limit: int | None = None, *, fairness_window: float | None = None, **kwargs: Any
    ) -> None:
        self.created: list[Item] = []
        self.disposed: list[tuple[Item, str]] = []
        self.fail_creation: BaseException | None = None  # raised once, then cleared
        if fairness_window is not None:
            self.fairness_window = fairness_window  # type: ignore[misc]
        super().__init__(limit, **kwargs)

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
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeGate:
    """A closed gate that never blocks: see :class:`FakeGates`."""

    def __init__(self, gates: FakeGates) -> None:
        self.gates = gates
        self.is_open = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.gates.sleeps.append(timeout)
        if not self.is_open and self.gates.meanwhile:
            self.gates.meanwhile.pop(0)()
        if self.is_open:
            self.is_open = False
            return True
        if timeout < 0:
            raise AssertionError("a wait without a timeout would never end")
        self.gates.clock.advance(timeout)
        return False

    def release(self) -> None:
        if self.is_open:
            raise RuntimeError("release unlocked lock")  # as threading.Lock does
        self.is_open = True


class FakeGates:
    """A gate factory for a pool on a :class:`FakeClock`.

    A waiter sleeping on a closed gate first lets the next ``meanwhile``
    step run (one per sleep, in order), which may open the gate (by returning
    an item, resizing ...). If the gate is open then, the sleep ends at once;
    if not, the clock moves on by the whole timeout and the sleep times out.
    ``sleeps`` records every timeout slept with; ``on_make`` runs whenever a
    waiter gets its gate, under the pool lock, just before it queues.
    """

    def __init__(
        self,
        clock: FakeClock,
        meanwhile: Iterable[Callable[[], object]] = (),
        on_make: Callable[[], object] | None = None,
    ) -> None:
        self.clock = clock
        self.meanwhile = list(meanwhile)
        self.on_make = on_make
        self.made: list[FakeGate] = []
        self.sleeps: list[float] = []

    def __call__(self) -> FakeGate:
        if self.on_make is not None:
            self.on_make()
        gate = FakeGate(self)
        self.made.append(gate)
        return gate


class WatchedGate:
    """A real gate that reports each sleep to its :class:`WatchedGates`."""

    def __init__(self, gates: WatchedGates) -> None:
        self.gates = gates
        self.gate = closed_gate()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.gates.note_sleep()
        return self.gate.acquire(blocking, timeout)

    def release(self) -> None:
        self.gate.release()


class WatchedGates:
    """Real gates for threaded tests, and a way to wait until callers are asleep on them."""

    def __init__(self) -> None:
        self.changed = threading.Condition()

    def __call__(self) -> WatchedGate:
        return WatchedGate(self)

    def note_sleep(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` holds after some caller went to sleep.

        ``timeout`` only keeps a broken pool from hanging the test.
        """
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "the callers never got there"


class Progress:
    """Threads report progress here; the test waits for a condition on it without polling."""

    def __init__(self) -> None:
        self.changed = threading.Condition()

    def note(self, update: Callable[[], object] = lambda: None) -> None:
        with self.changed:
            update()
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "no progress"


def idle_items(pool: ResourcePool[Item]) -> list[Item]:
    """Idle items, bottom of the stack first (white box: the pool's own state)."""
    return [entry.obj for entry in pool._state.idle]


def run_threads(target: Callable[[int], object], count: int, join_timeout: float = 30.0) -> None:
    """Run ``target(i)`` in ``count`` threads; fail (instead of hanging) if any gets stuck."""
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
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


def force_no_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pools created from now on believe the GIL is off (a free-threaded build)."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)


@pytest.fixture(params=["gil", "no-gil"])
def gil_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: under the GIL (lock-free checkout and return) and as on a
    free-threaded build, where every acquire and return decides under the pool lock."""
    if request.param == "no-gil":
        force_no_gil(monkeypatch)
    return str(request.param)


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Make the interpreter switch threads every few bytecodes, for this test only."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)
