"""Confirmed publishes wait for the replicas, on asyncio: one ``WAIT`` at a time, shared.

The rules are the synchronous transport's (:mod:`transports.redis.replicas`):
how many replicas (``min_replicas``, or 1 while the master has one), how long
(``replica_timeout``, at most half the command timeout), and
:class:`~broker.errors.ConfirmTimeout` when too few acknowledged.

What asyncio adds: many tasks publish on one connection, and ``WAIT`` holds
that connection until it returns (it waits for the writes of the connection
that sends it, so it cannot go anywhere else). So the tasks share: a publish
that returned is covered by any ``WAIT`` sent after it, and a task joins the
one in flight if that was sent after its publish, or else the next one,
which the first task to need it sends. At most one ``WAIT`` is in flight, so
every other call of the connection waits behind at most one, and a burst of
confirmed publishes costs a few ``WAIT`` round trips rather than one each.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from transports.redis.replicas import ReplicaTarget, too_few_replicas

__all__ = ["AsyncReplication", "ReplicaLink"]


class ReplicaLink(Protocol):
    """What :class:`AsyncReplication` needs of the connection's Redis link."""

    @property
    def where(self) -> str:
        """``redis host:port/db``, for messages."""
        ...

    async def replicas(self) -> int:
        """How many replicas are connected to the server now."""
        ...

    async def wait_for_replicas(self, count: int, timeout: float) -> int:
        """``WAIT count timeout`` on the connection that wrote; how many acknowledged."""
        ...


class AsyncReplication:
    """Waits for replicas on behalf of one connection's channels (see the module docstring).

    Args:
        link: the connection's Redis link.
        target: how many replicas to wait for.
        seconds: the longest one ``WAIT`` lasts.
    """

    def __init__(self, link: ReplicaLink, target: ReplicaTarget, seconds: float) -> None:
        self._link = link
        self._target = target
        self._seconds = seconds
        self._sent = 0  # WAITs sent so far; the one in flight is number _sent
        self._in_flight: asyncio.Future[int] | None = None

    async def replicate(self) -> None:
        """Return once the writes that returned before this call reached the replicas asked for.

        Raises:
            broker.errors.ConfirmTimeout: fewer replicas acknowledged them in
                time; they are on the master only.
            broker.errors.RecoverableConnectionError: the link broke.
        """
        target = self._target
        if target.stale():
            target.counted(await self._link.replicas())
        needed = target.needed
        if not needed:
            return
        got = await self._wait(needed)
        if got >= needed:
            return
        if target.stale(shortfall=True):
            target.counted(await self._link.replicas())
        if target.needed:
            raise too_few_replicas(self._link.where, got, needed, self._seconds)

    async def _wait(self, needed: int) -> int:
        covering = self._sent + 1  # the first WAIT sent from now on covers the caller's writes
        while True:
            in_flight = self._in_flight
            if in_flight is None or in_flight.done():
                in_flight = self._send(needed)
            number = self._sent
            # Shielded: a cancelled caller does not cancel the others' wait (and a
            # WAIT cancelled mid-reply would drop the connection).
            got = await asyncio.shield(in_flight)
            if number >= covering:
                return got

    def _send(self, needed: int) -> asyncio.Future[int]:
        self._sent += 1
        in_flight = self._in_flight = asyncio.ensure_future(
            self._link.wait_for_replicas(needed, self._seconds)
        )
        in_flight.add_done_callback(self._done)
        return in_flight

    def _done(self, in_flight: asyncio.Future[int]) -> None:
        if self._in_flight is in_flight:
            self._in_flight = None
        if not in_flight.cancelled():
            in_flight.exception()  # retrieved: its waiters, if any, raised it already

    def __repr__(self) -> str:
        state = "waiting" if self._in_flight is not None else "idle"
        return f"<AsyncReplication {self._target!r} sent={self._sent} {state}>"
