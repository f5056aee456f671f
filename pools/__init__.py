"""Bounded, thread-safe, fork-safe pools of connections, channels and producers.

* :class:`ConnectionPool` (``conn.Pool(limit)``) and :class:`ChannelPool`
  (``conn.ChannelPool(limit)``) hand out leases: ``with pool.acquire() as
  conn:`` returns the item at the end of the block.
* ``pools.connections[conn]`` and ``pools.producers[conn]`` are process-wide
  pools shared by every connection with the same URLs and options.
* :func:`get_limit` / :func:`set_limit` hold the default limit (10) used when
  a pool is created with ``limit=None``; pools are never unbounded. A pool's
  own limit is changed with ``pool.resize(n)`` (never refuses) or, kombu's
  way, ``pool.limit = n`` / ``pool.set_limit(n, force=False)``.

Inside: :mod:`pools.decide` holds a pool's state and every decision about it
(pure: no I/O, no threads, no clock); :mod:`pools.resource` is the generic pool
around it (lock, clock, waiting threads, hooks); :mod:`pools.lease` is what a
borrower holds; :mod:`pools.waiting` how a caller waits; :mod:`pools.fork` what
happens after ``os.fork()``.

See ``docs/pools.rst`` ("Pools in web workers").
"""

from __future__ import annotations

from pools.channel import ChannelPool, PooledChannel
from pools.connection import ConnectionPool, PooledConnection
from pools.groups import PoolGroup, connections, producers, reset, set_limit
from pools.lease import Lease, PoolClosed, ResourceReleased
from pools.limits import DEFAULT_LIMIT, PoolInUse, get_limit
from pools.producer import PooledProducer, ProducerPool
from pools.resource import ResourcePool

__all__ = [
    "DEFAULT_LIMIT",
    "ChannelPool",
    "ConnectionPool",
    "Lease",
    "PoolClosed",
    "PoolGroup",
    "PoolInUse",
    "PooledChannel",
    "PooledConnection",
    "PooledProducer",
    "ProducerPool",
    "ResourcePool",
    "ResourceReleased",
    "connections",
    "get_limit",
    "producers",
    "reset",
    "set_limit",
]
