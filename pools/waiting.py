"""How a caller waits for an item, and how returns that take no lock never lose a wake-up.

A :class:`Waiter` is a :class:`~pools.decide.Ticket` (its place in the queue,
which the decisions read and write under the pool lock) plus a *gate* it
sleeps on. The gate is a binary semaphore made by an injectable factory
(:data:`GateFactory`; the default, :func:`closed_gate`, is a pre-acquired
:class:`threading.Lock`), so a test can drive a wait and its timeout on a
fake clock without sleeping.

The protocol. Under the GIL, returns push entries onto the idle stack without
the pool lock, while waiters queue under it. Everything below relies on each
single ``list.append``/``list.pop``/``deque`` call and attribute read or write
being atomic, and on these steps happening in one global order, which the GIL
gives. (With the GIL off, on a free-threaded build, the pool makes every
acquire and return decision under its lock, so the lock orders the pushes and
the queueing; the gates are opened after it is released, as below.)

* A releaser **pushes, then looks**: ``idle.append(entry)``, then, if
  ``waiters`` is not empty, :meth:`Waiter.notify` on ``waiters[0]``.
* A waiter **queues, then looks**: under the lock it appends itself to
  ``waiters``, then, if it is first, pops from ``idle`` itself.
* So for any push and any queueing, one of them comes first in the global
  order, and the other one's look sees it: either the releaser sees the
  waiter (and notifies the head), or the waiter sees the item. A waiter never
  sleeps through an item pushed while it was queueing.
* Only the head is notified, and only the head takes idle items. When the
  head leaves the queue (served, took an item, timed out), the decision that
  removed it names the new head to be told if anything is idle, under the
  lock, after the removal; the gate is opened once the lock is released. A
  releaser that read the old head as ``waiters[0]`` did so before that
  removal, so its push came before it too, and that last look sees the item.
* A woken waiter **re-arms, then looks**: it sets ``notified = False``
  before it checks the stack; a push after the re-arm notifies it again (the
  gate opens, so its next sleep ends at once), a push before it is seen by the
  check. At worst a wake-up finds nothing (another thread took the item within
  the fairness window) and the waiter sleeps again.
* The gate opens at most once per arming (``notified``), and opening an open
  gate raises ``RuntimeError``, ignored: two notifiers racing open it once.
* Serving (an item or a slot) is a decision made under the lock: the waiter
  leaves the queue and its ticket gets the entry, then the final state; the
  gate is opened after the lock is released. A waiter that sees ``SERVED``
  (after waking, or after its deadline passed first) finds the entry too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from pools.decide import Ticket

__all__ = ["Gate", "GateFactory", "Waiter", "closed_gate"]


class Gate(Protocol):
    """What a waiter sleeps on: a closed binary semaphore (``threading.Lock`` fits)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool:
        """Sleep until the gate opens (then close it again) or ``timeout`` seconds pass."""
        ...

    def release(self) -> None:
        """Open the gate; raises ``RuntimeError`` if it is open already."""
        ...


#: Makes a closed gate for each waiter (tests inject one driven by a fake clock).
GateFactory = Callable[[], Gate]


def closed_gate() -> Gate:
    """The default gate: a :class:`threading.Lock`, acquired, so the next acquire sleeps."""
    gate = threading.Lock()
    gate.acquire()
    return gate


class Waiter(Ticket):
    """A queued acquirer, asleep on ``gate`` until notified or served.

    Args:
        gate: a closed gate (see :class:`Gate`).
        since: when it queued, on the pool's clock.
    """

    __slots__ = ("gate", "notified")

    def __init__(self, gate: Gate, since: float) -> None:
        super().__init__(since)
        self.gate = gate
        self.notified = False

    def notify(self) -> None:
        """Tell this waiter that an item may be idle (no lock needed)."""
        if not self.notified:
            self.notified = True
            self._open()

    def wake(self) -> None:
        """Open the gate of a waiter whose state a decision made final."""
        self.notified = True
        self._open()

    def _open(self) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs a context manager per call)
            self.gate.release()
        except RuntimeError:
            pass  # already open: someone else opened it first

    def __repr__(self) -> str:
        return f"<Waiter state={self.state} since={self.since} notified={self.notified}>"
