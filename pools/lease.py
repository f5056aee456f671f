"""What a pool hands out: a :class:`Lease` on one item, and the contract with its pool."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from broker.errors import BrokerError

if TYPE_CHECKING:
    from pools.decide import Entry

__all__ = ["Lease", "LeaseOwner", "PoolClosed", "ResourceReleased", "forwarded"]

T = TypeVar("T")
L = TypeVar("L", bound="Lease[Any]")


class PoolClosed(BrokerError, RuntimeError):
    """The pool was closed with ``close()``; it hands out nothing more.

    Also a :class:`RuntimeError`, which is what kombu raised here.
    """


class ResourceReleased(BrokerError, RuntimeError):
    """A lease was used after it was released back to its pool."""


class LeaseOwner(Protocol[T]):
    """What a lease needs from the pool that made it."""

    def checkin(self, entry: Entry[T], broken: bool) -> None:
        """Take back ``entry`` from a lease that just ended (``broken``: dispose of it)."""
        ...

    def is_broken_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` raised inside a ``with`` block means the item is broken."""
        ...


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
    it after release raises :class:`ResourceReleased`. The lease's own names
    (``resource``, ``is_released``, ``pool``, ``release``, ``discard``,
    ``maker``) and private names (``_x``) are not forwarded.

    Made by the pool only, through :meth:`maker`.
    """

    __slots__ = ("_held", "_pool")

    _pool: LeaseOwner[T]
    # One element until the lease ends: list.pop() is atomic, so of two
    # releases (even racing in two threads) exactly one gets the entry.
    _held: list[Entry[T]]

    @classmethod
    def maker(cls: type[L], pool: LeaseOwner[Any]) -> Callable[[Entry[Any]], L]:
        """The function ``pool`` makes its leases with: one new lease per checkout.

        A function made once per pool, rather than an ``__init__``: a checkout
        is about a microsecond, and calling a Python ``__init__`` through the
        class costs a tenth of it on CPython 3.11.
        """

        def make(entry: Entry[Any]) -> L:
            lease = cls()
            lease._pool = pool
            lease._held = [entry]
            return lease

        return make

    @property
    def resource(self) -> T:
        """The pooled object itself (for ``isinstance`` checks or APIs wanting the real type)."""
        try:
            return self._held[0].obj
        except IndexError:
            raise ResourceReleased(
                f"{self!r} was released; acquire a new one from the pool"
            ) from None

    @property
    def is_released(self) -> bool:
        """True once the item went back to the pool (or was discarded)."""
        return not self._held

    @property
    def pool(self) -> LeaseOwner[T]:
        """The pool this lease came from."""
        return self._pool

    def release(self) -> None:
        """Return the item to the pool. A second call does nothing."""
        try:
            entry = self._held.pop()
        except IndexError:
            return
        self._pool.checkin(entry, False)

    def discard(self) -> None:
        """Return the item as broken: the pool disposes of it and frees its slot."""
        try:
            entry = self._held.pop()
        except IndexError:
            return
        self._pool.checkin(entry, True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool = self._pool
        broken = exc is not None and pool.is_broken_error(exc)
        try:
            entry = self._held.pop()
        except IndexError:
            return
        pool.checkin(entry, broken)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, so the lease's own methods
        # stay fast. Private names and dunders stay private (copy and pickle
        # probe for dunders; an unset slot must not recurse into forwarding).
        if name[0] == "_":
            raise AttributeError(name)
        return self._forward(name)

    def _forward(self, name: str) -> Any:
        """The leased item's ``name``; :class:`ResourceReleased` once the lease ended."""
        try:
            obj = self._held[0].obj
        except IndexError:
            raise ResourceReleased(
                f"cannot use {name!r}: {self!r} was released; acquire a new one from the pool"
            ) from None
        return getattr(obj, name)

    def __repr__(self) -> str:
        try:
            entry = self._held[0]
        except (AttributeError, IndexError):
            return f"<{type(self).__name__} released>"
        return f"<{type(self).__name__} of {entry.obj!r}>"


def forwarded(name: str) -> property:
    """A lease attribute reading the item's ``name`` directly: for what is used per message.

    Every other attribute reaches the item through ``Lease.__getattr__``,
    which Python calls only after the normal lookup failed, an
    ``AttributeError`` made and dropped on every access. Released, the lease
    raises :class:`ResourceReleased` here too.
    """

    def get(self: Lease[Any]) -> Any:
        return self._forward(name)

    return property(get, doc=f"The leased item's ``{name}``.")
