"""A bounded pool of channels on one connection (kombu's ``Connection.ChannelPool()``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.errors import (
    BrokerConnectionError,
    ChannelError,
    ChannelLimitExceeded,
    OperationalError,
)
from pools.lease import Lease, forwarded
from pools.resource import ResourcePool
from pools.waiting import GateFactory, closed_gate

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from transports.base import Channel

__all__ = ["ChannelPool", "PooledChannel"]

_CHANNEL_BROKEN = (ChannelError, BrokerConnectionError, OperationalError)


class PooledChannel(Lease["Channel"]):
    """A channel borrowed from a :class:`ChannelPool`.

    Every channel method is forwarded (``basic_publish``, ``queue_declare``
    ...); ``release()`` or the end of a ``with`` block returns the channel to
    the pool instead of closing it. :attr:`resource` is the channel itself.
    """

    __slots__ = ()

    # What a producer or consumer touches per message, read without __getattr__.
    is_open = forwarded("is_open")
    prepare_message = forwarded("prepare_message")
    basic_publish = forwarded("basic_publish")
    basic_ack = forwarded("basic_ack")


class ChannelPool(ResourcePool["Channel"]):
    """Up to ``limit`` channels opened on ``connection``.

    Channels are opened lazily on demand (which connects ``connection`` if it
    is not connected yet), or ``preload`` of them in the constructor. The pool
    is shared by threads: each borrowed channel is one thread's until it is
    returned, while the connection underneath serves them all at once (on
    every transport; see ``docs/pools.rst``, "Threads").

    A channel the broker closed (a 404 from a passive declare, a 406 ...) or
    one that raised a channel or connection error inside ``with`` is discarded
    and later replaced, never handed out again. When the connection itself
    turns out dead, every channel of the pool is dropped and the connection is
    torn down, so the next channel is opened on a fresh connection.

    After ``os.fork()`` the child's pool opens its channels on a private clone
    of ``connection`` (never on the parent's socket); that clone is closed
    with the pool.

    Args:
        connection: the :class:`broker.Connection` the channels belong to.
        limit: most channels at once; ``None`` means :func:`pools.get_limit`.
        preload: how many channels to open right away.
        clock: monotonic time source for waiting (tests inject a fake one).
        gate_factory: what a blocked ``acquire`` sleeps on (see :mod:`pools.waiting`).
    """

    LimitExceeded = ChannelLimitExceeded
    lease_class = PooledChannel

    def __init__(
        self,
        connection: Connection,
        limit: int | None = None,
        preload: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        gate_factory: GateFactory = closed_gate,
    ) -> None:
        self.connection = connection
        self._template = connection
        self._owns_connection = False
        self._drop_lock = threading.Lock()
        super().__init__(limit, preload=preload, clock=clock, gate_factory=gate_factory)

    if TYPE_CHECKING:

        def acquire(self, block: bool = False, timeout: float | None = None) -> PooledChannel:
            """Borrow a channel (see :meth:`ResourcePool.acquire`)."""
            ...

    def close(self) -> None:
        """Close the pool and its idle channels (and its private connection after a fork)."""
        super().close()
        if self._owns_connection:
            self.connection.close()

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> Channel:
        return self.connection.channel()

    def check_out(self, obj: Channel) -> bool:
        return obj.is_open

    def check_in(self, obj: Channel) -> bool:
        return obj.is_open

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _CHANNEL_BROKEN)

    def dispose_resource(self, obj: Channel, reason: str) -> None:
        conn = self.connection
        if reason in ("broken", "forced") and not conn.verify():
            self._connection_lost()
            return
        if obj.is_open:
            obj.close()

    def _connection_lost(self) -> None:
        """The connection is dead: drop every channel on it, tear it down."""
        # Dead channels need no close: the connection's teardown frees them.
        # Borrowed ones are discarded when they come back. The look and the
        # drop go together: two threads finding the link dead drop it once.
        self.invalidate()
        with self._drop_lock:
            if not self.connection.verify():
                self.connection.collect()

    def after_fork(self) -> None:
        # The parent's connection object still points at the parent's socket.
        self.connection = self._template.clone()
        self._owns_connection = True
        self._drop_lock = threading.Lock()
