"""Helpers for messaging tests on a connection: fetch one message."""

from __future__ import annotations

from broker import Connection, Message, Queue


def fetch(conn: Connection, name: str) -> Message:
    """The next message of queue ``name`` (``basic_get``); fails the test when there is none."""
    message = Queue(name)(conn).get()
    assert message is not None, f"no message in {name!r}"
    return message
