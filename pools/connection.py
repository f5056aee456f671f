"""A bounded pool of broker connections (kombu's ``Connection.Pool()``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from broker.errors import BrokerConnectionError, ConnectionLimitExceeded, OperationalError
from pools.lease import Lease
from pools.resource import ResourcePool
from pools.waiting import GateFactory, closed_gate

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from transports.base import Channel

__all__ = ["VERIFY_AFTER", "ConnectionPool", "PooledConnection"]

#: Seconds a connection may sit idle before checkout verifies its socket (a
#: ``poll`` system call). Connections returned more recently are handed out
#: unchecked: if one broke meanwhile, its first call raises a recoverable
#: error and the pool replaces it when the ``with`` block ends.
VERIFY_AFTER = 1.0

# Errors that mean the connection itself is gone (transports translate the
# driver's errors into these, so nothing else needs listing).
_CONNECTION_BROKEN = (BrokerConnectionError, OperationalError)


class PooledConnection(Lease["Connection"]):
    """A connection borrowed from a :class:`ConnectionPool`.

    Behaves like the :class:`broker.Connection` it wraps (every attribute is
    forwarded), except that ``release()`` returns it to the pool instead of
    closing it, and leaving a ``with`` block does the same. :attr:`resource`
    is the Connection itself, for code that needs the real type.
    """

    __slots__ = ()


class ConnectionPool(ResourcePool["Connection"]):
    """Up to ``limit`` clones of ``connection``, handed out one borrower at a time.

    Items are ``connection.clone()`` objects, so they share its URLs and
    options; ``connection`` itself is only a template and is never connected
    by the pool. A clone connects lazily, on the borrower's first use, unless
    it was preloaded.

    When I/O happens:

    * ``ConnectionPool(..., preload=N)`` connects N clones in the constructor
      (connection errors propagate from there).
    * ``acquire()`` does no broker I/O: it hands out an idle clone after a
      non-blocking liveness check (``verify()``), or a new unconnected clone.
    * ``release()`` does no I/O unless the connection is discarded, which
      happens when it broke, expired, or the pool shrank or closed.

    A connection error (``BrokerConnectionError``, ``OperationalError``)
    raised inside ``with pool.acquire() as conn:`` tears that connection down
    (``collect()``, no handshake) and frees its slot. An idle connection whose
    socket died is detected on checkout and replaced transparently.

    Args:
        connection: the template :class:`broker.Connection`.
        limit: most connections at once; ``None`` means :func:`pools.get_limit`.
        preload: how many connections to open right away.
        max_idle_time: seconds an idle connection may wait before it is closed.
        max_lifetime: seconds after which a connection is retired.
        verify_after: seconds a connection may sit idle before checkout probes
            its socket (:data:`VERIFY_AFTER`; ``0``: on every checkout).
        clock: monotonic time source for expiry and waiting (tests inject a fake one).
        gate_factory: what a blocked ``acquire`` sleeps on (see :mod:`pools.waiting`).
    """

    LimitExceeded = ConnectionLimitExceeded
    lease_class = PooledConnection

    def __init__(
        self,
        connection: Connection,
        limit: int | None = None,
        preload: int | None = None,
        max_idle_time: float | None = None,
        max_lifetime: float | None = None,
        *,
        verify_after: float = VERIFY_AFTER,
        clock: Callable[[], float] = time.monotonic,
        gate_factory: GateFactory = closed_gate,
    ) -> None:
        self.connection = connection
        super().__init__(
            limit,
            preload=preload,
            max_idle_time=max_idle_time,
            max_lifetime=max_lifetime,
            verify_after=verify_after,
            clock=clock,
            gate_factory=gate_factory,
        )

    if TYPE_CHECKING:

        def acquire(self, block: bool = False, timeout: float | None = None) -> PooledConnection:
            """Borrow a connection (see :meth:`ResourcePool.acquire`)."""
            ...

    @contextlib.contextmanager
    def acquire_channel(
        self, block: bool = False, timeout: float | None = None
    ) -> Iterator[tuple[PooledConnection, Channel]]:
        """Borrow a connection and its default channel for the ``with`` block.

        Yields ``(connection, channel)``; the connection goes back to the pool
        at the end (or is discarded if a connection error escaped the block).
        """
        with self.acquire(block, timeout) as lease:
            yield lease, lease.default_channel

    # -- hooks ----------------------------------------------------------------

    def create_resource(self) -> Connection:
        return self.connection.clone()

    def preload_resource(self) -> Connection:
        conn = self.connection.clone()
        conn.connect()
        return conn

    def check_out(self, obj: Connection) -> bool:
        # A clone that never connected (or whose link was noticed closed) is
        # fine: it connects on first use. Only a link that claims to be open
        # but is dead underneath needs replacing.
        return obj.verify() or not obj.connected

    def is_broken_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _CONNECTION_BROKEN)

    def dispose_resource(self, obj: Connection, reason: str) -> None:
        if reason in ("broken", "forced"):
            obj.collect()
        else:
            obj.close()
