"""Fork handling shared by every pool: after ``os.fork()`` the child starts empty.

Every pool registers a reset here. In a forked child, ``os.register_at_fork``
updates :data:`PROCESS` and runs each live pool's reset; pools also compare
``PROCESS.pid`` with the pid they were made in on every acquire, which costs no
system call. The hook runs for ``os.fork()``, multiprocessing, gunicorn and
uwsgi (which calls ``PyOS_AfterFork_Child``); a fork made by C code that skips
it is not detected. Items inherited from the parent are *abandoned*: never
closed (a close handshake or ``shutdown()`` on a socket the parent still uses
would break the parent's connection), only kept referenced here, so that no
finalizer can run on them. Their file descriptors go away when the child exits.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["PROCESS", "Abandoning", "abandon", "register"]

logger = logging.getLogger("broker.pool")


class Abandoning(Protocol):
    """A pool that can forget an item inherited from the parent process."""

    def abandon_resource(self, obj: Any) -> None:
        """Forget ``obj`` without any I/O (its socket belongs to the parent)."""
        ...


class _Process:
    """The current process id, kept current by the fork hook."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def __repr__(self) -> str:
        return f"<process {self.pid}>"


#: ``PROCESS.pid`` is this process's id, without a system call.
PROCESS = _Process()

# Weak references to the resets of live pools: a pool that is garbage
# collected drops out by itself.
_resets: set[weakref.WeakMethod[Callable[[], None]]] = set()
_inherited: list[object] = []


def register(reset: Callable[[], None]) -> None:
    """Have the bound method ``reset`` called in every forked child while its object lives."""
    _resets.add(weakref.WeakMethod(reset, _resets.discard))


def abandon(pool: Abandoning, obj: object) -> None:
    """Forget ``obj``, made by another process, without any I/O on it."""
    _inherited.append(obj)
    try:
        pool.abandon_resource(obj)
    except Exception:
        logger.debug("%r error abandoning %r", pool, obj, exc_info=True)


def _reset_all_after_fork() -> None:
    PROCESS.pid = os.getpid()
    for ref in list(_resets):
        reset = ref()
        if reset is not None:
            reset()


os.register_at_fork(after_in_child=_reset_all_after_fork)
