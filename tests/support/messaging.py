"""Helpers for messaging tests on a connection: wait for a condition, fetch one message."""

from __future__ import annotations

import time
from collections.abc import Callable

from broker import Connection, Message, Queue


def drain_until(conn: Connection, predicate: Callable[[], object], timeout: float = 2.0) -> None:
    """Drain events until ``predicate()`` is true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        conn.drain_events(timeout=max(deadline - time.monotonic(), 0.001))


def fetch(conn: Connection, name: str) -> Message:
    """The next message of queue ``name`` (``basic_get``); fails the test when there is none."""
    message = Queue(name)(conn).get()
    assert message is not None, f"no message in {name!r}"
    return message
