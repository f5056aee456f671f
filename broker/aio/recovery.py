"""Replaying the recovery record on an asyncio connection after a reconnect.

The record itself is the synchronous connection's
:class:`~broker.connection.recovery.Topology` (declared exchanges,
exchange-to-exchange bindings, queues and queue bindings, held strongly, in
declaration order); consumers are kept by the asyncio connection, since
they revive with coroutines. :func:`replay` declares everything again in the
same order on one fresh channel, notes it as declared, then revives each
consumer so it consumes again into the same callbacks and iterators. A
channel error for one entity is logged and reported; connection errors
propagate to the reconnect loop, which owns them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from broker.aio.declare import Record, declare_exchange, queue_declare
from broker.connection.recovery import (
    BindingRecord,
    ExchangeBindingRecord,
    ReplayFailure,
    Topology,
    note_declared,
)
from broker.entities.queue import Queue
from broker.errors import BrokerConnectionError, ChannelError
from transports.base_aio import AsyncChannel

__all__ = ["ReplayTarget", "RevivableConsumer", "replay"]

logger = logging.getLogger(__name__)


class RevivableConsumer(Protocol):
    """What recovery needs of a consumer: move to the new connection, consume again."""

    async def revive(self, channel: Any) -> None:
        """Re-attach to the reconnected connection."""
        ...

    async def consume(self) -> None:
        """Start consuming again."""
        ...

    def recovery_failed(self, exc: BaseException) -> None:
        """The connection could not be recovered (``exc`` says why): stop waiting."""
        ...


class ReplayTarget(Record, Protocol):
    """The connection replayed onto: a :class:`~broker.aio.declare.Record` that opens channels."""

    async def channel(self) -> AsyncChannel: ...


async def _bind(record: BindingRecord, channel: AsyncChannel) -> None:
    await channel.queue_bind(
        queue=record.queue.name, exchange=record.exchange, routing_key=record.routing_key,
        arguments=record.arguments,
    )  # fmt: skip


async def _bind_exchange(record: ExchangeBindingRecord, channel: AsyncChannel) -> None:
    await channel.exchange_bind(
        destination=record.destination, source=record.source, routing_key=record.routing_key,
        arguments=record.arguments,
    )  # fmt: skip


class _Replayer:
    """Runs declarations on one channel, opening a new one after a channel error."""

    def __init__(self, target: ReplayTarget, failures: list[ReplayFailure]) -> None:
        self.target = target
        self.failures = failures
        self._channel: AsyncChannel | None = None

    async def channel(self) -> AsyncChannel:
        if self._channel is None or not self._channel.is_open:
            self._channel = await self.target.channel()
        return self._channel

    async def run(self, what: object, action: Callable[[AsyncChannel], Awaitable[Any]]) -> None:
        try:
            await action(await self.channel())
        except BrokerConnectionError:
            raise
        except ChannelError as exc:
            logger.warning("could not restore %r after reconnect: %s", what, exc)
            self.failures.append(ReplayFailure(what, exc))
            await self.close()

    async def declare_queue(self, queue: Queue, channel: AsyncChannel) -> None:
        if queue.server_named and queue.name and not queue.exclusive:
            try:
                await queue_declare(queue, channel)
                return
            except ChannelError:
                # Gone (auto-deleted, or lost with its node): ask for a new name.
                await self.close()
                channel = await self.channel()
        if queue.server_named:
            queue.name = ""
        await queue_declare(queue, channel)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            with contextlib.suppress(ChannelError, BrokerConnectionError):
                await channel.close()


async def replay(
    target: ReplayTarget, topology: Topology, consumers: Iterable[RevivableConsumer]
) -> list[ReplayFailure]:
    """Declare ``topology`` again on ``target``, then revive ``consumers``.

    Returns:
        The entities and consumers that could not be restored.
    """
    exchanges, queues = topology.exchanges, topology.queues
    bindings, links = topology.bindings, topology.exchange_bindings
    failures: list[ReplayFailure] = []
    replayer = _Replayer(target, failures)
    try:
        for exchange in exchanges:
            await replayer.run(exchange, functools.partial(declare_exchange, exchange))
        for link in links:
            await replayer.run(link, functools.partial(_bind_exchange, link))
        for queue in queues:
            await replayer.run(queue, functools.partial(replayer.declare_queue, queue))
        for record in bindings:
            await replayer.run(record, functools.partial(_bind, record))
    finally:
        await replayer.close()
    note_declared(target.declared_entities, exchanges, queues, bindings, failures)
    for consumer in list(consumers):
        try:
            await consumer.revive(target)
            await consumer.consume()
        except BrokerConnectionError:
            raise
        except ChannelError as exc:
            logger.warning("could not restore consumer %r: %s", consumer, exc)
            failures.append(ReplayFailure(consumer, exc))
    return failures
