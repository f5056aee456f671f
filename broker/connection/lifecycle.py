"""Lifecycle plumbing of a Connection: cross-thread callbacks and broker blocking.

Mixed into :class:`broker.Connection`.

* ``add_callback_threadsafe(fn)`` may be called from any thread; ``fn`` runs on
  the thread that owns the connection (the one that connected it) during its
  next library call. This is how worker threads ack messages safely.
* ``connection.blocked`` from the broker (it is short of memory or disk) calls
  the ``on_blocked(reason)`` hooks; ``connection.unblocked`` calls
  ``on_unblocked()``. With ``blocked_connection_timeout`` set, a library call
  made while blocked for longer raises ``ConnectionBlockedTimeout`` (a
  recoverable error, so ``ensure`` moves to another broker).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from broker.errors import ConnectionBlockedTimeout

__all__ = ["ConnectionLifecycle"]

logger = logging.getLogger("broker.connection")


class ConnectionLifecycle:
    """Pending cross-thread callbacks and blocked-connection state."""

    on_blocked: list[Callable[[str], Any]]
    on_unblocked: list[Callable[[], Any]]
    _owner: int | None
    _blocked_since: float | None
    _blocked_timeout: float | None
    _pending: collections.deque[Callable[[], Any]]
    as_uri: Callable[..., str]
    _connection_lost: Callable[[BaseException | None], None]

    def add_callback_threadsafe(self, fn: Callable[[], Any]) -> None:
        """Schedule ``fn`` to run on the owning thread during its next library call.

        The documented way to ack from worker threads: pass
        ``functools.partial(message.ack)`` from the worker. ``drain_events``
        serves queued callbacks at least every 0.25 s.
        """
        self._pending.append(fn)

    def _run_pending_callbacks(self) -> None:
        if not self._pending or threading.get_ident() != self._owner:
            return
        while self._pending:
            self._pending.popleft()()

    def _handle_blocked(self, reason: str) -> None:
        self._blocked_since = time.monotonic()
        logger.warning("connection to %s blocked by the broker: %s", self.as_uri(), reason)
        for hook in self.on_blocked:
            hook(reason)

    def _handle_unblocked(self) -> None:
        self._blocked_since = None
        logger.info("connection to %s unblocked", self.as_uri())
        for hook in self.on_unblocked:
            hook()

    @property
    def is_blocked(self) -> bool:
        """Whether the broker currently blocks this connection (``connection.blocked``)."""
        return self._blocked_since is not None

    def _check_blocked(self) -> None:
        since, limit = self._blocked_since, self._blocked_timeout
        if since is not None and limit is not None and time.monotonic() - since > limit:
            exc = ConnectionBlockedTimeout(
                f"connection to {self.as_uri()} blocked by the broker for more than {limit:g} s"
            )
            self._connection_lost(exc)
            raise exc
