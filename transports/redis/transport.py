"""The ``redis://`` transport: AMQP's model on Redis data structures, with reliable acks.

Requires redis-py (``pip install 'brokerpool[redis]'``). URLs look like
``redis://[[user]:password@]host[:port][/db]``; ``rediss://`` turns on TLS.

How the model maps onto Redis (every operation is one atomic Lua script call,
see ``broker.lua``):

* Exchanges, queues and bindings are hashes and sets under
  ``<key_prefix>{<db>}:`` (one Redis Cluster hash tag per database and prefix);
  routing (direct, topic, fanout, headers and exchange-to-exchange bindings)
  happens inside the script, so a publish is one round trip. A fanout copies
  the message into every bound queue: each copy is as durable as any other.
* A queue is a list; with ``x-max-priority`` it is a sorted set, highest
  priority first and FIFO within a priority.
* A consumer waits on a pub/sub notification of its queues (no polling) and
  then takes messages with one script call, at most its prefetch allowance.
* **Reliable acknowledgement.** Taking a message and recording it as unacked
  is one atomic step: the message moves into its channel's unacked hash.
  Acks delete it there. A channel or connection that closes puts its unacked
  messages back at the head of their queues, flagged ``redelivered``. Every
  connection holds a *lease* of ``visibility_timeout`` seconds, renewed by its
  heartbeats and by every delivery; when a consumer dies, its lease runs out
  and the next connection that looks (any delivery or heartbeat of any
  client) puts the dead one's unacked messages back. A connection whose lease
  ran out cannot ack any more (it is closed with
  :class:`~broker.errors.RecoverableConnectionError`), so a message is never
  both restored and acked.

Transport options: ``visibility_timeout`` (seconds, default 300),
``key_prefix`` (default ``"brokerpool:"``; kombu's name ``global_keyprefix``
is accepted for it), ``socket_timeout`` (seconds one
command may take, default 10; two heartbeats when heartbeats are on),
``max_batch`` (messages one delivery call may take per consumer without a
prefetch limit, default 100), ``min_replicas`` (replicas a publish in
confirm mode waits for with ``WAIT``; default 1 while the master has one)
and ``replica_timeout`` (the longest that wait, default 2 s). The
``sentinel://`` transport (:mod:`transports.redis.sentinel`) is this one on
the master a Sentinel names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from transports import base
from transports._shared.replies import EXCHANGE_TYPES
from transports.redis.channel import RedisChannel
from transports.redis.connection import RedisConnection
from transports.redis.driver import Link
from transports.redis.message import Message
from transports.redis.options import check, settings

__all__ = ["Message", "RedisChannel", "RedisConnection", "Transport"]


class Transport(base.Transport):
    """The ``redis://`` and ``rediss://`` transport."""

    name: ClassVar[str] = "redis"
    default_port: ClassVar[int | None] = 6379
    default_ssl_port: ClassVar[int | None] = 6379
    default_userid: ClassVar[str | None] = None
    default_password: ClassVar[str | None] = None
    capabilities: ClassVar[base.Capabilities] = base.Capabilities(
        heartbeats=True, publisher_confirms=True, exchange_types=EXCHANGE_TYPES, ssl=True
    )

    def driver_version(self) -> str:
        """redis-py's version."""
        # Imported here: transports.redis.driver imports redis-py first, with the
        # message that says how to install it when it is missing.
        import redis

        return redis.__version__

    @classmethod
    def check_params(cls, params: base.ConnectionParams) -> None:
        """Refuse a database path that is not a number, bad options and bad timeouts (no I/O).

        Raises:
            broker.errors.ConfigurationError: naming the key, the value and what is allowed.
        """
        check(params)

    def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> RedisConnection:
        """Connect, start this connection's lease and sweep leases that ran out.

        ``params.connect_timeout`` bounds all of it: the TCP connect, TLS, the
        login, the database selection and the lease.

        Raises:
            broker.errors.ConfigurationError: a bad option (before any I/O).
            broker.errors.AuthenticationError: Redis refused the password.
            broker.errors.TLSVerificationError: the server's certificate was rejected.
            broker.errors.TLSHandshakeError: TLS cannot work (e.g. the port answers in
                plain text).
            broker.errors.RecoverableConnectionError: refused, reset or timed out.
        """
        found = settings(params)
        host = f"[{params.hostname}]" if ":" in params.hostname else params.hostname
        link = Link(params, found, f"redis {host}:{params.port}/{found.db}")
        return RedisConnection(params, found, link)
