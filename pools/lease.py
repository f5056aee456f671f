"""What a pool hands out (:class:`Lease`) and the records it keeps per item and waiter."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from broker.errors import BrokerError

if TYPE_CHECKING:
    from pools.resource import ResourcePool

__all__ = ["Lease", "PoolClosed", "ResourceReleased"]

T = TypeVar("T")


class PoolClosed(BrokerError, RuntimeError):
    """The pool was closed with ``close()``; it hands out nothing more.

    Also a :class:`RuntimeError`, which is what kombu raised here.
    """


class ResourceReleased(BrokerError, RuntimeError):
    """A lease was used after it was released back to its pool."""


class Lease(Generic[T]):
    """One checkout of one pooled item.

    Attribute access is forwarded to the item, so a lease of a connection is
    used like the connection (``lease.default_channel``) and a lease of a
    channel like the channel (``lease.basic_publish(...)``). ``with
    pool.acquire() as x:`` binds the lease itself, so ``x.release()`` means
    "give it back" everywhere. An exception that the pool recognises as
    breaking the item (a connection error, for a connection) makes the pool
    dispose of the item instead of reusing it.

    Every checkout gets a new lease, so a stale reference cannot return an
    item that meanwhile went to another borrower: releasing a lease a second
    time does nothing (even when two threads release it at once), and using
    it after release raises :class:`ResourceReleased`. Private names (``_x``)
    are not forwarded.
    """

    # No __init__: the pool fills the slots itself, which keeps a checkout cheap.
    __slots__ = ("_entry", "_pool")

    _pool: ResourcePool[T]
    _entry: Entry[T] | None

    @property
    def resource(self) -> T:
        """The pooled object itself (for ``isinstance`` checks or APIs wanting the real type)."""
        entry = self._entry
        if entry is None:
            raise ResourceReleased(f"{self!r} was released; acquire a new one from the pool")
        return entry.obj

    @property
    def is_released(self) -> bool:
        """True once the item went back to the pool (or was discarded)."""
        return self._entry is None

    def release(self) -> None:
        """Return the item to the pool. A second call does nothing."""
        self._pool._release(self, False)

    def discard(self) -> None:
        """Return the item as broken: the pool disposes of it and frees its slot."""
        self._pool._release(self, True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        pool._release(self, exc is not None and pool.is_broken_error(exc))

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, so the lease's own methods
        # stay fast. Private names and dunders stay private (copy and pickle
        # probe for dunders; an unset slot must not recurse into forwarding).
        if name[0] == "_":
            raise AttributeError(name)
        entry = self._entry
        if entry is None:
            raise ResourceReleased(
                f"cannot use {name!r}: {self!r} was released; acquire a new one from the pool"
            )
        return getattr(entry.obj, name)

    def __repr__(self) -> str:
        entry = getattr(self, "_entry", None)
        state = "released" if entry is None else f"of {entry.obj!r}"
        return f"<{type(self).__name__} {state}>"


class Entry(Generic[T]):
    """One item plus the facts the pool keeps about it."""

    __slots__ = ("created", "gen", "idle_since", "obj", "pid")

    def __init__(self, obj: T, gen: int, pid: int, created: float) -> None:
        self.obj = obj
        self.gen = gen  # pool generation at creation; close/force_close_all/fork bump it
        self.pid = pid  # process that made it; no other process may ever close it
        self.created = created
        self.idle_since = created


# Waiter states. SERVED: handed an item or a free slot. CLOSED: the pool closed.
# Both are final and set under the pool lock before the gate opens.
WAITING, SERVED, CLOSED = 0, 1, 2


class Waiter:
    """A queued acquirer, asleep on ``gate`` until notified or served.

    How releasers, which take no lock, and waiters, which queue under the
    pool lock, never lose a wake-up. Everything below relies on each single
    ``list.append``/``list.pop``/``deque`` call and attribute read or write
    being atomic, and on these steps happening in one global order, which the
    GIL gives (with the GIL off, on a free-threaded build, returns take the
    pool lock, and then the lock orders everything):

    * A releaser **pushes, then looks**: ``idle.append(entry)``, then, if
      ``waiters`` is not empty, :meth:`notify` on ``waiters[0]``.
    * A waiter **queues, then looks**: under the lock it appends itself to
      ``waiters``, then, if it is first, pops from ``idle`` itself.
    * So for any push and any queueing, one of them comes first in the global
      order, and the other one's look sees it: either the releaser sees the
      waiter (and notifies the head), or the waiter sees the item. A waiter
      never sleeps through an item pushed while it was queueing.
    * Only the head is notified, and only the head takes idle items. When the
      head leaves the queue (served, took an item, timed out), whoever removed
      it notifies the new head if anything is idle, under the lock, after the
      removal. A releaser that read the old head as ``waiters[0]`` did so
      before that removal, so its push came before it too, and that last look
      sees the item.
    * A woken waiter **re-arms, then looks**: it sets ``notified = False``
      before it checks the stack; a push after the re-arm notifies it again
      (the gate opens, so its next sleep ends at once), a push before it is
      seen by the check. At worst a wake-up finds nothing (another thread took
      the item within the fairness window) and the waiter sleeps again.
    * The gate is a lock used as a binary semaphore: ``notify`` opens it at
      most once per arming (``notified``), and opening an open gate raises
      ``RuntimeError``, ignored: two notifiers racing open it once.
    * Serving (an item or a slot) happens under the lock: pop the waiter off
      the queue, fill its lease, set ``state``, then open the gate, so a
      waiter that sees ``SERVED`` after waking sees the item too.
    """

    __slots__ = ("gate", "lease", "notified", "since", "state")

    def __init__(self, lease: Lease[Any]) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()
        self.lease = lease
        self.state = WAITING
        self.notified = False
        self.since = time.monotonic()

    def notify(self) -> None:
        """Tell this waiter that an item may be idle (no lock needed)."""
        if not self.notified:
            self.notified = True
            self._open()

    def wake(self, state: int) -> None:
        """Under the pool lock: move to the final ``state``, then open the gate."""
        self.state = state
        self.notified = True
        self._open()

    def _open(self) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs a context manager per call)
            self.gate.release()
        except RuntimeError:
            pass  # already open: someone else opened it first
