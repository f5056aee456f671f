"""An asyncio Redis connection: channels, consumers, deliveries and the lease, on loop tasks.

The asyncio sibling of :class:`transports.redis.connection.RedisConnection`,
with the same guarantees (see :mod:`transports.redis.transport`): the lease
of ``visibility_timeout`` seconds, renewed on the event loop every
``min(heartbeat, visibility_timeout / 4)`` seconds and by every delivery
call; unacked messages held in Redis until acked, and put back when a
channel closes or the lease runs out. Two tasks of its own run while it is
open:

* the **delivery pump** asks Redis for messages (one ``deliver`` call for
  every consumer with room) only when there may be some: after a
  notification, after a consumer started or an ack freed room, after a full
  batch. An idle consumer sends nothing but its lease renewals. Handing a
  batch to the consumers yields to the loop every
  :data:`~transports.base_aio.SLICE` seconds;
* the **lease keeper** renews the lease when no delivery did for an
  interval; a renewal unanswered within two heartbeats breaks the link
  (:class:`~broker.errors.HeartbeatTimeout`), and a lease found expired
  closes it (its acks could no longer be honoured).

A broken link tears the connection down and calls ``on_lost(exc)``, unless
:meth:`AsyncRedisConnection.close` was called.

In confirm mode a channel's publish also waits for the replicas
(:meth:`AsyncRedisConnection.replicate`, one ``WAIT`` shared by the tasks
that need it: :mod:`transports.redis.aio.replicas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from broker.errors import BrokerConnectionError, BrokerError, RecoverableConnectionError
from transports import base, base_aio
from transports._shared.events import NextEvent
from transports.redis.aio.channel import AsyncRedisChannel
from transports.redis.aio.consuming import AsyncConsumer, AsyncConsuming
from transports.redis.aio.link import AsyncLink, Orphan
from transports.redis.aio.replicas import AsyncReplication
from transports.redis.connection import server_properties
from transports.redis.options import RedisSettings, replica_wait
from transports.redis.replicas import ReplicaTarget

__all__ = ["AsyncRedisConnection"]

logger = logging.getLogger(__name__)


class AsyncRedisConnection(base_aio.AsyncTransportConnection):
    """One asyncio connection to one Redis server (see the module docstring).

    Made unconnected by the transport's ``connect``, which then awaits :meth:`open`.
    """

    def __init__(
        self,
        params: base.ConnectionParams,
        found: RedisSettings,
        link: AsyncLink,
        on_lost: base_aio.LostCallback | None = None,
    ) -> None:
        self.params = params
        self.settings = found
        self.link = link
        self.uid = link.uid
        self.channels: dict[int, AsyncRedisChannel] = {}
        self.consumers: list[AsyncConsumer] = []
        self._on_lost = on_lost
        self._subscribed: dict[str, int] = {}
        self._channel_ids = itertools.count(1)
        self._open = False
        self._torn_down = False
        self._failure: BrokerError | None = None
        self._interval = found.visibility_timeout / 4
        if params.heartbeat:
            self._interval = min(self._interval, params.heartbeat)
        self._renewed = time.monotonic()
        self._rotation = 0
        self._pending = False  # there may be deliveries to take
        self._wakeup = asyncio.Event()
        self._next_event = NextEvent()
        self._slice = base_aio.TimeSlice()
        self._server_properties: Mapping[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closer: asyncio.Task[None] | None = None
        self._replication = AsyncReplication(
            link, ReplicaTarget(found.min_replicas, self._interval), replica_wait(params, found)
        )
        link.on_broken = self._fail
        link.on_notified = self.wake

    async def open(self) -> None:
        """Connect within ``connect_timeout``, then start the pump and the lease keeper.

        Raises:
            broker.errors.BrokerError: as :meth:`transports.redis.aio.link.AsyncLink.open`.
        """
        info = await self.link.open()
        self._server_properties = server_properties(info)
        self._open = True
        self._renewed = time.monotonic()
        self.spawn(self._pump())
        self.spawn(self._keep_lease())

    # -- facts ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True from the end of :meth:`open` until closed or broken."""
        return self._open

    @property
    def heartbeat(self) -> float:
        """How often the lease is renewed, in seconds: ``min(heartbeat, visibility_timeout / 4)``.

        Never 0: the lease must be renewed even when heartbeats were not asked for.
        """
        return self._interval

    @property
    def server_properties(self) -> Mapping[str, Any]:
        """What Redis said of itself when connecting (``INFO server``) and our capabilities."""
        return self._server_properties

    @property
    def is_blocked(self) -> bool:
        """Always False: Redis never blocks a connection."""
        return False

    @property
    def failure(self) -> BrokerError | None:
        """Why this connection died, when a failure (not a clean close) ended it."""
        return self._failure

    def verify(self) -> bool:
        """False once the connection is known closed or broken (no I/O)."""
        return self._open

    # -- calls (what channels and their consuming sides use) ----------------------------

    async def call(self, op: str, *args: Any, orphan: Orphan | None = None) -> Any:
        """One broker operation; a connection failure tears this connection down."""
        if not self._open:
            raise self.closed_error()
        return await self.link.call(op, *args, orphan=orphan)

    async def hdel(self, key: str, *fields: int) -> int:
        """HDEL under the key prefix; a connection failure tears this connection down."""
        if not self._open:
            raise self.closed_error()
        return await self.link.hdel(key, *fields)

    async def replicate(self) -> None:
        """Wait until this connection's writes so far reached the replicas ``min_replicas`` asks.

        With ``min_replicas`` unset that is 1 while the master has a replica
        connected (counted on first use, then at most once per heartbeat
        interval, and again when a wait falls short), else 0: nothing to wait
        for. Tasks waiting at once share one ``WAIT``.

        Raises:
            broker.errors.ConfirmTimeout: fewer replicas acknowledged within the
                replica timeout; the writes are on the master only, and lost if
                it fails before a replica copies them.
            broker.errors.RecoverableConnectionError: the connection is closed, or
                the link broke.
        """
        if not self._open:
            raise self.closed_error()
        await self._replication.replicate()

    def lease_lost(self) -> RecoverableConnectionError:
        """Close after finding the lease gone (acks could no longer be honoured)."""
        err = RecoverableConnectionError(
            f"{self.link.where}: this connection's lease ran out (no renewal within "
            f"visibility_timeout={self.settings.visibility_timeout:g}s); its unacked messages "
            "were returned to their queues and will be delivered again"
        )
        self._fail(err)
        return err

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in a task of this connection's, cancelled when it closes."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, BrokerConnectionError):
            self._fail(exc)
        elif exc is not None:
            logger.error("%r: a task failed", self, exc_info=exc)

    # -- channels and consumers ---------------------------------------------------------

    async def channel(self, owner: object | None = None) -> AsyncRedisChannel:
        """Open a new channel (no I/O: Redis keeps no channel state until it is used)."""
        if not self._open:
            raise self.closed_error()
        channel_id = next(self._channel_ids)
        channel = AsyncRedisChannel(self, channel_id, owner)
        self.channels[channel_id] = channel
        return channel

    def forget_channel(self, channel_id: int) -> None:
        """A channel of this connection closed: it is no longer one of :attr:`channels`."""
        self.channels.pop(channel_id, None)

    async def add_consumer(self, consumer: AsyncConsumer) -> None:
        """Start waking up for ``consumer``'s queue, then ask for its deliveries."""
        topic = f"{self.link.prefix}n:{consumer.queue}"
        if not self._subscribed.get(topic):
            await self.link.subscribe(topic)
        self._subscribed[topic] = self._subscribed.get(topic, 0) + 1
        self.consumers.append(consumer)
        self.wake()

    async def remove_consumer(self, consumer: AsyncConsumer) -> None:
        """Stop delivering to ``consumer``; unsubscribe when it was its queue's last."""
        if consumer not in self.consumers:
            return
        self.consumers.remove(consumer)
        topic = f"{self.link.prefix}n:{consumer.queue}"
        left = self._subscribed.get(topic, 0) - 1
        if left > 0:
            self._subscribed[topic] = left
            return
        self._subscribed.pop(topic, None)
        if self._open:
            # A broken link has torn the connection down already.
            with contextlib.suppress(RecoverableConnectionError):
                await self.link.unsubscribe(topic)

    # -- deliveries -------------------------------------------------------------------

    def wake(self) -> None:
        """Ask Redis for deliveries soon (a notification came, or room was freed)."""
        self._pending = True
        self._wakeup.set()

    async def _pump(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and self._open:
                self._pending = False
                if await self._deliver():
                    self._pending = True  # a full batch may have left more behind

    async def _deliver(self) -> bool:
        """One delivery call for every consumer with room; True if anything was dispatched."""
        consumers = self.consumers
        if not consumers:
            return False
        start = self._rotation % len(consumers)
        shared: dict[AsyncConsuming, int] = {}
        asked: list[tuple[AsyncConsumer, int]] = []
        wanted: dict[AsyncConsuming, int] = {}
        for consumer in consumers[start:] + consumers[:start]:
            room = consumer.consuming.room_for(consumer, shared)
            if room > 0:
                asked.append((consumer, room))
                wanted[consumer.consuming] = wanted.get(consumer.consuming, 0) + room
        if not asked:
            return False
        # Tags are reserved before the call: a basic_get of the same channel may run meanwhile.
        first = {consuming: consuming.reserve(count) for consuming, count in wanted.items()}
        args: list[Any] = [self.uid, self.settings.lease_ms]
        for consumer, room in asked:
            consuming = consumer.consuming
            args += [consuming.uid, consumer.queue, room,
                     int(consumer.no_ack), first[consuming]]  # fmt: skip
        taken = await self.call("deliver", *args)
        self._renewed = time.monotonic()
        if len(taken) > 1:  # round-robin across calls: the next starts after the last served
            last = asked[taken[-3] - 1][0]
            if last in self.consumers:
                self._rotation = self.consumers.index(last) + 1
        for index in taken[0]:
            consumer = asked[index - 1][0]
            await consumer.consuming.queue_gone(consumer)
        put_back: dict[AsyncConsuming, list[int]] = {}
        for i in range(1, len(taken), 3):
            if self._slice.due():  # a batch is decoded without waiting: let other tasks run
                await asyncio.sleep(0)
            consumer = asked[taken[i] - 1][0]
            consuming = consumer.consuming
            if not consuming.deliver(consumer, int(taken[i + 1]), taken[i + 2]):
                put_back.setdefault(consuming, []).append(int(taken[i + 1]))
        for consuming, tags in put_back.items():
            await consuming.put_back(tags)
        dispatched = len(taken) > 1 or bool(taken[0])
        if dispatched:
            self._next_event.happened()
        return dispatched

    async def _keep_lease(self) -> None:
        while True:
            delay = self._renewed + self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if not await self.call("renew", self.uid, self.settings.lease_ms):
                raise self.lease_lost()
            self._renewed = time.monotonic()

    async def drain_events(self, timeout: float | None = None) -> None:
        """Wait until the next delivery was dispatched (see the contract).

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            broker.errors.RecoverableConnectionError: the connection is closed or broke.
        """
        if not self._open:
            raise self.closed_error()
        await self._next_event.wait(timeout, self.link.where)

    # -- closing --------------------------------------------------------------------

    def _fail(self, err: BrokerError) -> None:
        """The link broke with ``err``: tear down and tell ``on_lost`` (unless closing)."""
        if self._torn_down:
            return
        self._failure = err
        logger.debug("%s failed: %s", self.link.where, err)
        self.teardown()
        if self._on_lost is not None:
            self._on_lost(err)

    async def close(self, timeout: float = 2.0) -> None:
        """Put unacked messages back, drop consumers and exclusive queues, then disconnect.

        Never raises: if the last call fails, the lease runs out and a sweep cleans up.
        """
        if not self._torn_down and self._open:
            self._stop()
            await self.link.close(last=(timeout, "disconnect", (self.uid,)))
        self.teardown()
        closer = self._closer
        if closer is not None:
            await closer

    def _stop(self) -> None:
        self._torn_down = True
        self._open = False
        for task in list(self._tasks):
            task.cancel()
        for channel in list(self.channels.values()):
            channel.forget()
        self._next_event.happened(self.closed_error())

    def teardown(self) -> None:
        """Drop the connection at once: no call to Redis; the sockets close in a task."""
        if self._torn_down:
            return
        self._stop()
        self._closer = asyncio.get_running_loop().create_task(self.link.close())

    def closed_error(self) -> BrokerConnectionError:
        """What a call on this closed connection raises: why it died, when known."""
        if isinstance(self._failure, BrokerConnectionError):
            return self._failure
        return RecoverableConnectionError(f"{self.link.where}: the redis connection is closed")

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<AsyncRedisConnection {self.link.where} db={self.settings.db} {state} "
            f"channels={len(self.channels)} consumers={len(self.consumers)}>"
        )
