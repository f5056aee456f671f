"""Lifecycle hooks of an asyncio connection, plain functions or coroutines, and its blocked state.

:class:`Hooks` is held by :class:`broker.aio.Connection`: ``on_open(conn)``
after every successful connect, ``on_connect(conn)`` after every
(re)connect once the recovery record was replayed, ``on_open_error(conn,
exc)`` when a connect gives up, ``on_close(conn, exc)`` when the link closes
(``exc`` is ``None`` for a clean close), ``on_blocked(reason)`` and
``on_unblocked()`` for the broker's ``connection.blocked``/``unblocked``.
It also keeps the blocked state: with a ``blocked_timeout``, a loop timer
calls ``on_blocked_too_long(timeout)`` when the broker blocks the link for
longer (the connection then drops the link with
:class:`~broker.errors.ConnectionBlockedTimeout`).
Each hook may be a plain function or a coroutine function; a coroutine's
result is awaited where the connection can wait (open, connect, close) and
run as a task of its own where it cannot (blocked, unblocked and a link lost
while nobody was calling): every such task is kept until it finishes and
its errors are logged.

The hook lists are public and may be appended to, as on the synchronous
:class:`broker.Connection`; the same validation applies to
``blocked_connection_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from broker.connection.callbacks import LifecycleCallbacks
from broker.instrumentation import hooks as instrumentation

__all__ = ["Hooks"]

logger = logging.getLogger("broker.aio.connection")

C = TypeVar("C")


class Hooks(Generic[C]):
    """The hooks of one asyncio connection (of type ``C``) and its blocked state.

    The hook lists and ``blocked_timeout`` are validated and kept by a
    :class:`~broker.connection.callbacks.LifecycleCallbacks` (the synchronous
    connection's); this class runs them the asyncio way.
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
        on_blocked_too_long: Callable[[float], Any] | None = None,
    ) -> None:
        self.lists: LifecycleCallbacks[C] = LifecycleCallbacks(
            on_open=on_open, on_open_error=on_open_error, on_close=on_close,
            on_connect=on_connect, on_blocked=on_blocked, on_unblocked=on_unblocked,
            blocked_timeout=blocked_timeout,
        )  # fmt: skip
        self._blocked_since: float | None = None
        self._on_blocked_too_long = on_blocked_too_long
        self._blocked_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- awaited ------------------------------------------------------------------

    async def opened(self, conn: C) -> None:
        """Run the ``on_open`` hooks."""
        if instrumentation.active is not None:
            instrumentation.active.connection_opened(conn)
        for hook in list(self.lists.on_open):
            await _settle(hook(conn))

    async def connected(self, conn: C) -> None:
        """Run the ``on_connect`` hooks (after the recovery record was replayed)."""
        for hook in list(self.lists.on_connect):
            await _settle(hook(conn))

    async def open_failed(self, conn: C, exc: BaseException) -> None:
        """Run the ``on_open_error`` hooks: a connect gave up."""
        for hook in list(self.lists.on_open_error):
            await _settle(hook(conn, exc))

    async def closed(self, conn: C, exc: BaseException | None) -> None:
        """Run the ``on_close`` hooks; the link is gone, and with it any blocked state."""
        self.link_gone()
        if instrumentation.active is not None:
            instrumentation.active.connection_closed(conn, exc)
        for hook in list(self.lists.on_close):
            await _settle(hook(conn, exc))

    # -- fired from the event loop's callbacks ----------------------------------------

    def closed_soon(self, conn: C, exc: BaseException | None) -> None:
        """:meth:`closed`, from a plain callback: coroutine hooks run as tasks."""
        self.link_gone()
        if instrumentation.active is not None:
            instrumentation.active.connection_closed(conn, exc)
        for hook in list(self.lists.on_close):
            self._fire(hook(conn, exc))

    def blocked(self, reason: str) -> None:
        """``connection.blocked`` arrived: note when, run the ``on_blocked`` hooks."""
        self._blocked_since = time.monotonic()
        limit = self.lists.blocked_timeout
        if limit is not None and self._blocked_timer is None and self._on_blocked_too_long:
            loop = asyncio.get_running_loop()
            self._blocked_timer = loop.call_later(limit, self._too_long, limit)
        for hook in list(self.lists.on_blocked):
            self._fire(hook(reason))

    def unblocked(self) -> None:
        """``connection.unblocked`` arrived: run the ``on_unblocked`` hooks."""
        self._unblock()
        for hook in list(self.lists.on_unblocked):
            self._fire(hook())

    def link_gone(self) -> None:
        """The link closed: it is no longer blocked (no hooks run)."""
        self._unblock()

    def _unblock(self) -> None:
        since, self._blocked_since = self._blocked_since, None
        if since is not None and instrumentation.active is not None:
            instrumentation.active.connection_unblocked(time.monotonic() - since)
        timer, self._blocked_timer = self._blocked_timer, None
        if timer is not None:
            timer.cancel()

    def _too_long(self, limit: float) -> None:
        self._blocked_timer = None
        if self._blocked_since is not None and self._on_blocked_too_long is not None:
            self._on_blocked_too_long(limit)

    def run_soon(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` now; a coroutine it returns runs as a task (kept until done)."""
        self._fire(fn())

    def _fire(self, result: Any) -> None:
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("connection hook failed", exc_info=task.exception())

    # -- blocked ------------------------------------------------------------------------

    @property
    def is_blocked(self) -> bool:
        """Whether the broker blocks the connection now."""
        return self._blocked_since is not None

    def __repr__(self) -> str:
        state = " blocked" if self.is_blocked else ""
        return f"<Hooks {self.lists!r} running={len(self._tasks)}{state}>"


async def _settle(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
