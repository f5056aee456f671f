"""The generic asyncio pool: :class:`ResourcePool`, what a borrower holds (:class:`Lease`).

See :mod:`broker.aio.pools` for the rules a user sees. Everything runs on one
event loop, so no lock is needed: each decision (take an idle item, count a
new one, wake the next waiter) is made in one synchronous step between awaits,
and I/O (connecting, closing) happens after it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

from broker.errors import BrokerError, ConfigurationError, LimitExceeded
from broker.instrumentation import hooks as instrumentation

__all__ = ["Acquisition", "Lease", "ResourcePool"]

T = TypeVar("T")

#: "No item ready" (items may be anything, ``None`` included).
_NONE: Any = object()


class Lease(Generic[T]):
    """What a borrower holds: the pooled object until :meth:`release`."""

    __slots__ = ("_pool", "_resource", "released")

    def __init__(self, pool: ResourcePool[T], resource: T) -> None:
        self._pool = pool
        self._resource = resource
        self.released = False

    @property
    def resource(self) -> T:
        """The pooled object."""
        return self._resource

    async def release(self) -> None:
        """Give the object back (once; a second call does nothing)."""
        if not self.released:
            self.released = True
            await self._pool.give_back(self._resource)

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<aio.Lease {state} {self._resource!r}>"


class Acquisition(Generic[T]):
    """``pool.acquire(...)``: await it for a :class:`Lease`, or ``async with`` it for the object."""

    __slots__ = ("_block", "_held", "_item", "_pool", "_timeout")

    def __init__(self, pool: ResourcePool[T], block: bool, timeout: float | None) -> None:
        self._pool, self._block, self._timeout = pool, block, timeout
        self._held = False
        self._item: T

    def __await__(self) -> Generator[Any, None, Lease[T]]:
        return self._pool.lease(self._block, self._timeout).__await__()

    async def __aenter__(self) -> T:
        pool = self._pool
        item: T = pool.take_ready()  # the common case: an idle item, no waiting
        if item is _NONE:
            item = (await pool.lease(self._block, self._timeout)).resource
        self._item = item
        self._held = True
        return item

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._held:
            return
        self._held = False
        pool, item = self._pool, self._item
        if (exc is not None and pool.is_broken_error(exc)) or not pool.keep(item):
            await pool.dispose(item)


class ResourcePool(Generic[T]):
    """A bounded asyncio pool; what it holds is made, checked and closed by the callables given.

    Args:
        create: makes a new item (a coroutine function).
        usable: whether an item may be handed out / kept (no I/O).
        dispose: closes an item that leaves the pool.
        limit: the most items in use at once (``None``: no limit).
        error: the :class:`~broker.errors.LimitExceeded` subclass to raise.
        broken: the error classes that, raised inside ``async with``, mean the item is broken.
    """

    def __init__(
        self,
        create: Callable[[], Awaitable[T]],
        usable: Callable[[T], bool],
        dispose: Callable[[T], Awaitable[None]],
        limit: int | None,
        error: type[LimitExceeded],
        broken: tuple[type[BaseException], ...] = (),
    ) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigurationError(f"limit must be an integer >= 1 or None, got {limit!r}")
        self._create, self._usable, self._dispose = create, usable, dispose
        self.limit = limit
        self._error = error
        self._broken = broken
        self._idle: collections.deque[T] = collections.deque()
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.is_closed = False
        if instrumentation.active is not None:
            instrumentation.active.pool_created(self)

    # -- counts ---------------------------------------------------------------------

    @property
    def in_use(self) -> int:
        """Items lent out now (and being made for a borrower)."""
        return self._in_use

    @property
    def idle(self) -> int:
        """Items waiting in the pool."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Borrowers waiting for an item."""
        return sum(1 for w in self._waiters if not w.done())

    def is_broken_error(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised while the item was borrowed, means the item is broken."""
        return isinstance(exc, self._broken)

    # -- borrowing ------------------------------------------------------------------

    def acquire(self, block: bool | None = None, timeout: float | None = None) -> Acquisition[T]:
        """Borrow an item; see the module docstring for ``block`` and ``timeout``.

        Raises:
            LimitExceeded: (the pool's own subclass) the limit is reached and
                no item came back in time.
        """
        if block is None:
            block = timeout is not None
        return Acquisition(self, block, timeout)

    def take_ready(self) -> Any:
        """An idle, usable item if one is there and the limit allows (counted as in use);
        else the module's ``_NONE`` marker. No waiting, no I/O."""
        idle = self._idle
        if not idle or self.is_closed or self._waiters:
            return _NONE  # the waiters go first
        if self.limit is not None and self._in_use >= self.limit:
            return _NONE
        item = idle.pop()
        if not self._usable(item):
            idle.append(item)  # lease() closes it, outside this synchronous step
            return _NONE
        self._in_use += 1
        return item

    async def lease(self, block: bool, timeout: float | None) -> Lease[T]:
        """Borrow an item (what awaiting :meth:`acquire` does)."""
        if self.is_closed:
            raise ConfigurationError(f"{self!r} is closed")
        if self.limit is not None and self._in_use >= self.limit:
            if not block:
                raise self._error(f"{self._limit_text()}")
            if instrumentation.active is not None:
                await self._timed_wait(instrumentation.active, timeout)
            else:
                await self._wait_for_room(timeout)
        self._in_use += 1  # taken in the same step as the check: nobody else got it
        try:
            item = await self._checkout()
        except BaseException:
            self._in_use -= 1
            self._wake_next()
            raise
        return Lease(self, item)

    async def _checkout(self) -> T:
        while self._idle:
            item = self._idle.pop()
            if self._usable(item):
                return item
            await self._dispose(item)
        return await self._create()

    async def _wait_for_room(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while self.limit is not None and self._in_use >= self.limit:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    except asyncio.CancelledError:
                        if waiter.done() and not waiter.cancelled():
                            self._wake_next()  # we were woken but leave: pass it on
                        raise
                    finally:
                        with contextlib.suppress(ValueError):
                            self._waiters.remove(waiter)
        except TimeoutError:
            raise self._error(f"{self._limit_text()} (waited {timeout} s)") from None

    async def _timed_wait(self, hooks: instrumentation.Hooks, timeout: float | None) -> None:
        started = time.monotonic()
        try:
            await self._wait_for_room(timeout)
        except LimitExceeded:
            hooks.pool_waited(self, time.monotonic() - started, True)
            raise
        hooks.pool_waited(self, time.monotonic() - started, False)

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _limit_text(self) -> str:
        return f"{type(self).__name__} limit of {self.limit} reached ({self._in_use} in use)"

    # -- returning ------------------------------------------------------------------

    async def give_back(self, item: T) -> None:
        """Return a borrowed item: kept if usable, else closed."""
        if not self.keep(item):
            await self.dispose(item)

    def keep(self, item: T) -> bool:
        """Take a borrowed item back; False when it must be closed (see :meth:`dispose`)."""
        self._in_use -= 1
        if self._waiters:
            self._wake_next()
        if self.is_closed or not self._usable(item):
            return False
        self._idle.append(item)
        return True

    async def dispose(self, item: T) -> None:
        """Close an item that leaves the pool."""
        await self._dispose(item)

    async def discard(self, lease: Lease[T]) -> None:
        """Close a borrowed item instead of returning it (it broke)."""
        if not lease.released:
            lease.released = True
            self._in_use -= 1
            self._wake_next()
            await self.dispose(lease.resource)

    async def close(self) -> None:
        """Close every idle item; items out are closed when they come back."""
        self.is_closed = True
        idle, self._idle = list(self._idle), collections.deque()
        for item in idle:
            with contextlib.suppress(BrokerError):
                await self._dispose(item)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    force_close_all = close

    def __repr__(self) -> str:
        return (
            f"<aio.{type(self).__name__} limit={self.limit} in_use={self._in_use} "
            f"idle={len(self._idle)} waiting={self.waiting}>"
        )
