"""Which thread uses a channel now: one at a time, nested calls allowed, a second thread refused.

A channel carries per-channel state that two threads would corrupt: the
confirm count of a channel in confirm mode, and the one reply py-amqp waits
for. :class:`ChannelUse` makes concurrent use an error instead
(:class:`~broker.errors.ChannelInUse`): a thread entering while another is
inside a call on the channel is refused at once, before anything is sent.
Calls made from inside a call on the same thread (a consumer callback
publishing on the channel that delivered) are nested and allowed. Acks,
rejects and nacks do not enter: they only write a frame, which the
connection sends whole, so a worker thread may settle a delivery while
another thread uses the channel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from broker.errors import ChannelInUse

__all__ = ["ChannelUse"]


class ChannelUse:
    """The thread inside a call on one channel, if any.

    Args:
        describe: names the channel in the error (called only then).
        on_new_user: called with a thread's id when a different thread than
            the last one enters (the connection routes the channel's events
            to the thread that used it last).
    """

    __slots__ = ("_describe", "_last", "_lock", "_on_new_user", "_thread")

    def __init__(self, describe: Callable[[], str], on_new_user: Callable[[int], None]) -> None:
        self._describe = describe
        self._on_new_user = on_new_user
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._last: int | None = None

    def enter(self) -> bool:
        """Enter a call; False for a call nested in one of the same thread (do not :meth:`leave`).

        Raises:
            broker.errors.ChannelInUse: another thread is inside a call on the channel.
        """
        me = threading.get_ident()
        if self._lock.acquire(False):
            self._thread = me
            if self._last != me:
                self._last = me
                self._on_new_user(me)
            return True
        if self._thread == me:
            return False
        raise ChannelInUse(
            f"{self._describe()} is in use by another thread; a channel belongs to one "
            f"thread at a time: give each thread a channel of its own (conn.channel(), "
            f"a ChannelPool, pools.producers)"
        )

    def leave(self) -> None:
        """Leave the call :meth:`enter` entered."""
        self._thread = None
        self._lock.release()

    @property
    def thread(self) -> int | None:
        """The thread inside a call now, if any."""
        return self._thread

    def __repr__(self) -> str:
        return f"<ChannelUse thread={self._thread} last={self._last}>"
