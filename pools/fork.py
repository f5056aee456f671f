"""Fork handling shared by every pool: after ``os.fork()`` the child starts empty.

Every pool registers here. In a forked child, :func:`os.register_at_fork`
runs each pool's reset and updates :data:`pid`, which pools compare with the
pid they were made in on every acquire. The hook runs for ``os.fork()``,
multiprocessing, gunicorn and uwsgi (which calls ``PyOS_AfterFork_Child``);
a fork made by C code that skips it is not detected. Items inherited from the parent
are *abandoned*: never closed (a close handshake or ``shutdown()`` on a
socket the parent still uses would break the parent's connection), only kept
referenced here, so that no finalizer can run on them. Their file
descriptors go away when the child exits.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Protocol

__all__ = ["abandon", "register"]

logger = logging.getLogger("broker.pool")


class _ForkAware(Protocol):
    def _reset_after_fork(self) -> None: ...

    def abandon_resource(self, obj: Any) -> None: ...


#: This process's id, kept current by the fork hook, so that pools can check
#: it on every acquire without a system call.
pid = os.getpid()

_live_pools: weakref.WeakSet[Any] = weakref.WeakSet()
_inherited: list[object] = []


def register(pool: _ForkAware) -> None:
    """Have ``pool`` reset itself in every forked child."""
    _live_pools.add(pool)


def abandon(pool: _ForkAware, obj: object) -> None:
    """Forget ``obj``, made by another process, without any I/O on it."""
    _inherited.append(obj)
    try:
        pool.abandon_resource(obj)
    except Exception:
        logger.debug("%r error abandoning %r", pool, obj, exc_info=True)


def _reset_all_after_fork() -> None:
    global pid
    pid = os.getpid()
    for pool in list(_live_pools):
        pool._reset_after_fork()


os.register_at_fork(after_in_child=_reset_all_after_fork)
