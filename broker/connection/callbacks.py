"""A connection's lifecycle callbacks, cross-thread callbacks and broker-blocked state.

:class:`LifecycleCallbacks` is held by :class:`broker.Connection`, which calls it
at each step of a connection's life:

* ``on_open(conn)`` after every successful connect, ``on_connect(conn)`` after
  every (re)connect once the recovery record was replayed,
  ``on_open_error(conn, exc)`` when a connect gives up, and
  ``on_close(conn, exc)`` when the connection closes (``exc`` is ``None`` for
  a clean close).
* ``add_callback_threadsafe(fn)`` may be called from any thread; ``fn`` runs on
  the thread that owns the connection during its next library call. The
  owner is the thread that connected until a thread drains the connection,
  then the thread that drained last: the one serving its events, as in pika.
  (Acks do not need this any more: ``message.ack()`` works from any thread.)
* ``connection.blocked`` from the broker (it is short of memory or disk) calls
  the ``on_blocked(reason)`` hooks; ``connection.unblocked`` calls
  ``on_unblocked()``. With ``blocked_connection_timeout`` set, the connection
  raises ``ConnectionBlockedTimeout`` from a library call made while blocked
  for longer (see :meth:`LifecycleCallbacks.blocked_too_long`).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from broker.instrumentation import hooks as instrumentation
from broker.timeouts import check_seconds

__all__ = ["LifecycleCallbacks"]

C = TypeVar("C")


def _as_list(value: Callable[[C], Any] | Iterable[Callable[[C], Any]] | None) -> list[Any]:
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)


class LifecycleCallbacks(Generic[C]):
    """The hooks of one connection (of type ``C``), its pending callbacks and blocked state.

    The hook lists are public and may be appended to (``conn.on_connect.append(fn)``).

    Args:
        on_open, on_open_error, on_close, on_connect, on_blocked, on_unblocked:
            the hooks given to the connection (``on_open`` and ``on_connect``
            may be a list).
        blocked_timeout: seconds the broker may block the connection before
            :meth:`blocked_too_long` reports it; ``None`` for no limit.

    Raises:
        ConfigurationError: ``blocked_timeout`` is not a number > 0 or None.
    """

    def __init__(
        self,
        *,
        on_open: Callable[[C], Any] | Iterable[Callable[[C], Any]] | None = None,
        on_open_error: Callable[[C, BaseException], Any] | None = None,
        on_close: Callable[[C, BaseException | None], Any] | None = None,
        on_connect: Callable[[C], Any] | Iterable[Callable[[C], Any]] | None = None,
        on_blocked: Callable[[str], Any] | None = None,
        on_unblocked: Callable[[], Any] | None = None,
        blocked_timeout: float | None = None,
    ) -> None:
        if blocked_timeout is not None:
            check_seconds(blocked_timeout, "blocked_connection_timeout", positive=True)
        self.on_open: list[Callable[[C], Any]] = _as_list(on_open)
        self.on_open_error: list[Callable[[C, BaseException], Any]] = (
            [on_open_error] if on_open_error else []
        )
        self.on_close: list[Callable[[C, BaseException | None], Any]] = (
            [on_close] if on_close else []
        )
        self.on_connect: list[Callable[[C], Any]] = _as_list(on_connect)
        self.on_blocked: list[Callable[[str], Any]] = [on_blocked] if on_blocked else []
        self.on_unblocked: list[Callable[[], Any]] = [on_unblocked] if on_unblocked else []
        self.blocked_timeout = blocked_timeout
        self._pending: collections.deque[Callable[[], Any]] = collections.deque()
        self._owner: int | None = None
        self._blocked_since: float | None = None

    # -- the hooks ------------------------------------------------------------------

    def opened(self, conn: C) -> None:
        """Run the ``on_open`` hooks; the calling thread owns the connection until one drains it."""
        if self._owner is None:
            self._owner = threading.get_ident()
        if instrumentation.active is not None:
            instrumentation.active.connection_opened(conn)
        for hook in self.on_open:
            hook(conn)

    def connected(self, conn: C) -> None:
        """Run the ``on_connect`` hooks (after the recovery record was replayed)."""
        for hook in self.on_connect:
            hook(conn)

    def open_failed(self, conn: C, exc: BaseException) -> None:
        """Run the ``on_open_error`` hooks: a connect gave up."""
        for hook in self.on_open_error:
            hook(conn, exc)

    def closed(self, conn: C, exc: BaseException | None) -> None:
        """Run the ``on_close`` hooks; the link is gone, and with it any blocked state."""
        if instrumentation.active is not None:
            self._report_unblocked()
            instrumentation.active.connection_closed(conn, exc)
        self._blocked_since = None
        for hook in self.on_close:
            hook(conn, exc)

    # -- cross-thread callbacks -------------------------------------------------------

    def add_threadsafe(self, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` for the owning thread (safe from any thread)."""
        self._pending.append(fn)

    @property
    def has_pending(self) -> bool:
        """Whether callbacks are queued."""
        return bool(self._pending)

    def drain_starting(self) -> bool:
        """The calling thread drains the connection: queued callbacks run on it from now on.

        Returns:
            bool: whether the drain has more to do than read (callbacks are
            queued, or the broker blocks the connection); one call where a drain
            would otherwise ask :attr:`has_pending` and :attr:`is_blocked`.
        """
        me = threading.get_ident()
        if self._owner != me:
            self._owner = me
        return bool(self._pending) or self._blocked_since is not None

    def run_pending(self) -> None:
        """Run the queued callbacks, in order, if called on the owning thread."""
        if not self._pending or threading.get_ident() != self._owner:
            return
        while self._pending:
            self._pending.popleft()()

    # -- blocked by the broker --------------------------------------------------------

    def blocked(self, reason: str) -> None:
        """``connection.blocked`` arrived: note when, run the ``on_blocked`` hooks."""
        self._blocked_since = time.monotonic()
        for hook in self.on_blocked:
            hook(reason)

    def unblocked(self) -> None:
        """``connection.unblocked`` arrived: run the ``on_unblocked`` hooks."""
        if instrumentation.active is not None:
            self._report_unblocked()
        self._blocked_since = None
        for hook in self.on_unblocked:
            hook()

    def _report_unblocked(self) -> None:
        since = self._blocked_since
        if since is not None and instrumentation.active is not None:
            instrumentation.active.connection_unblocked(time.monotonic() - since)

    @property
    def is_blocked(self) -> bool:
        """Whether the broker blocks the connection now."""
        return self._blocked_since is not None

    def blocked_too_long(self) -> float | None:
        """The timeout, if the connection has been blocked for longer than it; else ``None``."""
        since, limit = self._blocked_since, self.blocked_timeout
        if since is not None and limit is not None and time.monotonic() - since > limit:
            return limit
        return None

    def __repr__(self) -> str:
        state = " blocked" if self.is_blocked else ""
        return (
            f"<LifecycleCallbacks on_open={len(self.on_open)} on_connect={len(self.on_connect)} "
            f"on_close={len(self.on_close)} pending={len(self._pending)}{state}>"
        )
