"""Waiting in tests without racing the clock: read events, or poll, until something holds.

The deadlines here are hang guards, never speed checks: they are generous,
and reaching one fails the test with a message saying what never happened.

``drain_until`` works on anything with ``drain_events(timeout=...)`` that
raises :class:`TimeoutError` when nothing arrived in time: a
:class:`broker.Connection`, a :class:`transports.base.TransportConnection`
and a raw ``amqp.Connection`` (whose ``socket.timeout`` is ``TimeoutError``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["DEFAULT_TIMEOUT", "Drainable", "drain_for", "drain_until", "wait_until"]

#: Seconds before a wait gives up when the caller names no deadline.
DEFAULT_TIMEOUT = 10.0

#: Longest single ``drain_events`` call: ``done`` may also turn true through
#: another thread or a timer, so it is checked at least this often.
_SLICE = 0.25


class Drainable(Protocol):
    """A connection that reads and dispatches incoming events."""

    def drain_events(self, timeout: float | None = ...) -> Any: ...


def drain_until(
    conn: Drainable,
    done: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    message: str = "the expected events did not arrive",
) -> None:
    """Drain ``conn`` until ``done()`` is true.

    Raises:
        AssertionError: ``done()`` was still false after ``timeout`` seconds.
        Whatever ``drain_events`` raises other than :class:`TimeoutError`.
    """
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{message} within {timeout:g} s")
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=min(remaining, _SLICE))


def drain_for(conn: Drainable, seconds: float) -> None:
    """Drain ``conn`` for ``seconds``, dispatching whatever arrives.

    For checks that nothing more comes: a duplicate, a message that must stay put.
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=min(remaining, _SLICE))


def wait_until(
    predicate: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 0.01,
    message: str = "the condition did not hold",
) -> None:
    """Poll ``predicate()`` every ``interval`` seconds until it is true.

    For state changed by other threads or processes; to wait for deliveries
    on a connection use :func:`drain_until`, which reads them.

    Raises:
        AssertionError: the predicate was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout:g} s")
        time.sleep(interval)
