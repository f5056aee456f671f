"""Bounded pools of asyncio connections, channels and producers, and per-broker pool groups.

``pool.acquire(block=None, timeout=None)`` follows kombu: when the limit is
reached it raises :class:`~broker.errors.ConnectionLimitExceeded` /
:class:`~broker.errors.ChannelLimitExceeded` at once, or, with a ``timeout``
(or ``block=True``), after waiting that long for an item to come back.
``block=True`` without a timeout waits as long as it takes. The result is
both awaitable and an async context manager::

    async with pool.acquire(timeout=1) as conn:      # conn is the pooled object
        ...
    lease = await pool.acquire(timeout=1)            # or hold the lease
    await lease.release()

Releasing twice gives the item back once; an item found broken on return or
on checkout is closed and replaced, never handed out again. Cancelling a
task inside ``acquire`` (waiting, or while a new item is being connected)
leaves the pool consistent: the task holds nothing, its place goes to the
next waiter. Everything runs on one event loop, so no lock is needed: each
decision is made in one synchronous step between awaits.

``broker.aio.pools.connections[conn]`` and ``producers[conn]`` are the
process-wide pools for every connection with the same URLs and options (its
``identity``), as ``pools.groups`` does on the synchronous side.
"""

from __future__ import annotations

from broker.aio.pools.channel import ChannelPool
from broker.aio.pools.connection import ConnectionPool
from broker.aio.pools.groups import DEFAULT_LIMIT, PoolGroup, connections, producers, reset
from broker.aio.pools.producer import ProducerPool
from broker.aio.pools.resource import Lease, ResourcePool

__all__ = [
    "DEFAULT_LIMIT",
    "ChannelPool",
    "ConnectionPool",
    "Lease",
    "PoolGroup",
    "ProducerPool",
    "ResourcePool",
    "connections",
    "producers",
    "reset",
]
