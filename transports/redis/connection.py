"""A connection of the Redis transport: channels, consumers, deliveries and the lease.

See :mod:`transports.redis.transport` for how AMQP's model maps onto Redis.

Threads may share a connection, a channel each. redis-py serialises the
commands of the owner's Redis connection; :attr:`RedisConnection.lock`
guards the consuming bookkeeping (so acks may come from any thread); one
thread at a time waits for deliveries in :meth:`RedisConnection.drain_events`
(others wait for it, within their timeout), and consumer callbacks run on
that thread, outside the lock.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from broker.errors import BrokerConnectionError, RecoverableConnectionError
from transports import base
from transports.redis.channel import RedisChannel
from transports.redis.consuming import Consumer, Consuming, Handoff
from transports.redis.driver import Link
from transports.redis.options import RedisSettings, replica_wait
from transports.redis.replicas import ReplicaTarget, too_few_replicas

__all__ = ["RedisConnection", "server_properties"]

#: Longest single wait for a notification (see RedisConnection._wait).
_WAIT_SLICE = 0.25

_CAPABILITIES: Mapping[str, bool] = MappingProxyType(
    {
        "publisher_confirms": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "exchange_exchange_bindings": True,
        "connection.blocked": False,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
        "direct_reply_to": False,
        "consumer_priorities": False,
    }
)


def server_properties(info: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``server_properties`` of a Redis connection, from its server's ``INFO server``.

    What the server says of itself, and the capabilities the transport gives
    it (publisher confirms, ``basic.nack``, consumer cancel notifications...).
    """
    return MappingProxyType(
        {
            "product": "Redis",
            "version": str(info.get("redis_version", "unknown")),
            "platform": f"{info.get('os', '')} {info.get('arch_bits', '')}-bit".strip(),
            "information": f"redis_mode={info.get('redis_mode', 'standalone')}",
            "capabilities": _CAPABILITIES,
        }
    )


class RedisConnection(base.TransportConnection):
    """One connection to one Redis server (see the module docstring)."""

    def __init__(self, params: base.ConnectionParams, found: RedisSettings, link: Link) -> None:
        self.params = params
        self.settings = found
        self.link = link
        self.uid = link.uid
        self.prefix = found.keyspace
        self.channels: dict[int, RedisChannel] = {}
        self.consumers: list[Consumer] = []
        self._subscribed: dict[str, int] = {}
        self._channel_ids = itertools.count(1)
        self._open = True
        self._torn_down = False
        # Set by the heartbeat thread when it finds the connection dead; the owner raises it.
        self._failure: BrokerConnectionError | None = None
        link.on_broken = self.connection_failed  # every failure of the owner's link tears down
        self._interval = found.visibility_timeout / 4
        if params.heartbeat:
            self._interval = min(self._interval, params.heartbeat)
        self._renewed = time.monotonic()
        self._rotation = 0
        self._pending = False  # set when there may be deliveries to take (see drain_events)
        self._server_properties: Mapping[str, Any] | None = None
        self._replica_wait = replica_wait(params, found)
        self._replicas = ReplicaTarget(found.min_replicas, self._interval)
        #: Guards channels' consuming bookkeeping and the consumer list (see the module docstring).
        self.lock = threading.RLock()
        self._draining = threading.Lock()  # one thread waits for deliveries at a time

    # -- facts ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def heartbeat(self) -> float:
        """How often the lease is renewed (and, when asked for, the link checked), in seconds.

        ``min(heartbeat, visibility_timeout / 4)``; never 0, because the lease
        must be renewed even when heartbeats were not asked for.
        """
        return self._interval

    @property
    def server_properties(self) -> Mapping[str, Any]:
        """What Redis says of itself (``INFO server``, asked on first use) and our capabilities."""
        if self._server_properties is None:
            self._server_properties = server_properties(self.link.server_info())
        return self._server_properties

    @property
    def frame_max(self) -> int:
        return 512 * 1024 * 1024  # Redis' largest string (proto-max-bulk-len)

    @property
    def is_blocked(self) -> bool:
        return False

    # -- calls --------------------------------------------------------------------

    def call(self, op: str, *args: Any) -> Any:
        """One broker operation; a connection failure tears this connection down."""
        if not self._open:
            raise self.closed_error()
        return self.link.call(op, *args)

    def hdel(self, key: str, *fields: int) -> int:
        """HDEL under the key prefix; a connection failure tears this connection down."""
        if not self._open:
            raise self.closed_error()
        return self.link.hdel(key, *fields)

    def replicate(self) -> None:
        """Wait until this connection's writes so far reached the replicas ``min_replicas`` asks.

        With ``min_replicas`` unset that is 1 while the master has a replica
        connected (counted on first use, then at most once per heartbeat
        interval, and again when a wait falls short), else 0: nothing to wait for.

        Raises:
            broker.errors.ConfirmTimeout: fewer replicas acknowledged within the
                replica timeout; the writes are on the master only, and lost if
                it fails before a replica copies them.
            broker.errors.RecoverableConnectionError: the link broke.
        """
        target = self._replicas
        if target.stale():
            target.counted(self.link.replicas())
        needed = target.needed
        if not needed:
            return
        got = self.link.wait_for_replicas(needed, self._replica_wait)
        if got >= needed:
            return
        if target.stale(shortfall=True):
            target.counted(self.link.replicas())
        if target.needed:
            raise too_few_replicas(self.link.where, got, needed, self._replica_wait)

    def lease_lost(self) -> RecoverableConnectionError:
        """Close after finding the lease gone (acks could no longer be honoured)."""
        err = self._lease_error()
        self.connection_failed(err)
        return err

    def _lease_error(self) -> RecoverableConnectionError:
        return RecoverableConnectionError(
            f"{self.link.where}: this connection's lease ran out (no renewal within "
            f"visibility_timeout={self.settings.visibility_timeout:g}s); its unacked messages "
            "were returned to their queues and will be delivered again"
        )

    # -- channels and consumers ---------------------------------------------------------

    def channel(self, owner: object | None = None) -> RedisChannel:
        if not self._open:
            raise self.closed_error()
        channel_id = next(self._channel_ids)
        channel = RedisChannel(self, channel_id, owner)
        self.channels[channel_id] = channel
        return channel

    def forget_channel(self, channel_id: int) -> None:
        """A channel of this connection closed: it is no longer one of :attr:`channels`."""
        self.channels.pop(channel_id, None)

    def add_consumer(self, consumer: Consumer) -> None:
        """Start waking up for ``consumer``'s queue."""
        with self.lock:
            topic = self._topic(consumer.queue)
            if not self._subscribed.get(topic):
                self.link.subscribe(topic)
            self._subscribed[topic] = self._subscribed.get(topic, 0) + 1
            self.consumers.append(consumer)
        self._pending = True

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop delivering to ``consumer``; unsubscribe when it was its queue's last."""
        with self.lock:
            if consumer not in self.consumers:
                return
            self.consumers.remove(consumer)
            topic = self._topic(consumer.queue)
            left = self._subscribed.get(topic, 0) - 1
            if left > 0:
                self._subscribed[topic] = left
                return
            self._subscribed.pop(topic, None)
            if self._open:
                with contextlib.suppress(RecoverableConnectionError):  # the link tore us down
                    self.link.unsubscribe(topic)

    def _topic(self, queue: str) -> str:
        return f"{self.prefix}n:{queue}"

    # -- events ---------------------------------------------------------------------

    def drain_events(self, timeout: float | None = None) -> None:
        """Deliver to the consumers what is ready, waiting up to ``timeout`` for something.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            broker.errors.RecoverableConnectionError: the connection is closed or broke
                (:class:`~broker.errors.HeartbeatTimeout` when heartbeats are on and
                Redis did not answer a command within two of them).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._draining.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise TimeoutError("timed out")  # another thread drained the whole time
        try:
            self._drain(deadline)
        finally:
            self._draining.release()

    def _drain(self, deadline: float | None) -> None:
        while True:
            if not self._open:
                raise self.closed_error()
            # Redis is asked only when there may be something to take: nothing
            # is sent while a consumer idles, but for the lease renewal.
            if self._pending:
                self._pending = False
                if self._deliver():
                    self._pending = True  # a full batch may have left more behind
                    return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("timed out")
            due = self._renewed + self._interval
            wait = due - now if deadline is None else min(due, deadline) - now
            if wait > 0 and self._wait(wait):
                self._pending = True
            self.heartbeat_tick()  # renews the lease when due

    def wake(self) -> None:
        """Ask Redis for deliveries on the next ``drain_events`` (room was freed)."""
        self._pending = True

    def _wait(self, seconds: float) -> bool:
        """Sleep until a notification arrives (True) or ``seconds`` pass (False).

        At most :data:`_WAIT_SLICE` at a time: another thread may subscribe
        meanwhile (a new consumer), and the pub/sub link is one thread's at a time.
        """
        seconds = min(seconds, _WAIT_SLICE)
        if not self._subscribed:
            time.sleep(seconds)
            return False
        if self.link.wait(seconds) is None:
            return False
        while self.link.wait(0) is not None:  # coalesce the ones already here
            pass
        return True

    def _deliver(self) -> bool:
        """One delivery call for every consumer with room; True if anything was dispatched.

        The callbacks run after the lock is let go: a slow one holds up no ack.
        """
        with self.lock:
            taken, handoffs = self._take()
        for consumer, message in handoffs:
            consumer.consuming.hand_over(consumer, message)
        return taken

    def _take(self) -> tuple[bool, list[Handoff]]:
        """The delivery call and its bookkeeping (lock held); the callbacks still to make."""
        handoffs: list[Handoff] = []
        consumers = self.consumers
        if not consumers:
            return False, handoffs
        start = self._rotation % len(consumers)
        self._rotation += 1
        order = consumers[start:] + consumers[:start]
        args: list[Any] = [self.uid, self.settings.lease_ms]
        asked: list[Consumer] = []
        shared: dict[Consuming, int] = {}
        for consumer in order:
            consuming = consumer.consuming
            room = consuming.room_for(consumer, shared)
            if room > 0:
                asked.append(consumer)
                args += [consuming.uid, consumer.queue, room,
                         int(consumer.no_ack), consuming.next_tag]  # fmt: skip
        if not asked:
            return False, handoffs
        taken = self.call("deliver", *args)
        self._renewed = time.monotonic()
        for index in taken[0]:
            consumer = asked[index - 1]
            consumer.consuming.queue_gone(consumer)
        put_back: dict[Consuming, list[int]] = {}
        for i in range(1, len(taken), 3):
            consumer = asked[taken[i] - 1]
            consuming = consumer.consuming
            kept, handoff = consuming.deliver(consumer, int(taken[i + 1]), taken[i + 2])
            if not kept:
                put_back.setdefault(consuming, []).append(int(taken[i + 1]))
            elif handoff is not None:
                handoffs.append(handoff)
        for consuming, tags in put_back.items():
            consuming.put_back(tags)
        return len(taken) > 1 or bool(taken[0]), handoffs

    def heartbeat_tick(self, rate: int = 2) -> None:
        """Renew the lease (and sweep dead connections) if due.

        Raises:
            broker.errors.HeartbeatTimeout: Redis did not answer within two heartbeats.
            broker.errors.RecoverableConnectionError: the lease had run out, or the link broke.
        """
        if time.monotonic() < self._renewed + self._interval:
            return
        if not self.call("renew", self.uid, self.settings.lease_ms):
            raise self.lease_lost()
        self._renewed = time.monotonic()

    def send_heartbeat(self) -> None:
        """Renew the lease from another thread (through the keeper's own Redis connection).

        A failure marks the connection dead; the owner's next call raises it.
        """
        if not self._open:
            return
        try:
            alive = self.link.keeper_call("renew", self.uid, self.settings.lease_ms)
        except BrokerConnectionError as exc:
            self._failure = exc
            self._open = False
            raise
        if not alive:
            self._failure = self._lease_error()
            self._open = False

    def verify(self) -> bool:
        return self._open

    def close(self, timeout: float = 2.0) -> None:
        """Put unacked messages back, drop consumers and exclusive queues, then disconnect."""
        if not self._open:
            self.teardown()
            return
        # Never raises: if this fails, the lease runs out and a sweep cleans up.
        with contextlib.suppress(Exception):
            self.link.call_within(timeout, "disconnect", self.uid)
        self.teardown()

    def connection_failed(self, err: BrokerConnectionError) -> None:
        """The owner's link broke with ``err``: remember why, and drop the connection."""
        if self._failure is None:
            self._failure = err
        self.teardown()

    @property
    def failure(self) -> BrokerConnectionError | None:
        """Why this connection died, when a failure (not a clean close) ended it."""
        return self._failure

    def teardown(self) -> None:
        self._open = False
        if self._torn_down:
            return
        self._torn_down = True
        for channel in list(self.channels.values()):
            channel.forget()
        self.link.close()

    def closed_error(self) -> BrokerConnectionError:
        """What a call on this closed connection raises: why it died, when known.

        Also tears the connection down, in case the heartbeat thread found it
        dead and only marked it.
        """
        self.teardown()
        if self._failure is not None:
            return self._failure
        return RecoverableConnectionError(f"{self.link.where}: the redis connection is closed")

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<RedisConnection {self.link.where} db={self.settings.db} {state} "
            f"channels={len(self.channels)} consumers={len(self.consumers)}>"
        )
