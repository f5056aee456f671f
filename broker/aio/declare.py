"""Declaring the shared entities (exchanges, queues, bindings) on asyncio channels.

Exchanges and queues are declarative values shared with the synchronous API;
their own ``declare()`` methods talk to synchronous channels, so the asyncio
side declares them here, from their public attributes, with the same rules:

* a declaration made for a :class:`broker.aio.Connection` (its
  :class:`Record`) is remembered in ``declared_entities`` (skip repeats until
  the next reconnect; auto-delete and expiring entities are never cached)
  and in ``topology`` (replayed after a reconnect, unless ``recover=False``);
* server-named queues get their name written back into the same object;
* the default exchange ``''`` and ``no_declare`` entities are never declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from broker.entities.exchange import Exchange
from broker.entities.owner import RecoveryRecord
from broker.entities.queue import Queue
from transports.base import QueueDeclareOk
from transports.base_aio import AsyncChannel

__all__ = [
    "Record",
    "bind_queue",
    "declare_exchange",
    "declare_queue",
    "delete_exchange",
    "delete_queue",
    "maybe_declare",
    "queue_declare",
]


class Record(Protocol):
    """Where declarations are remembered (a :class:`broker.aio.Connection`)."""

    @property
    def declared_entities(self) -> set[Any]:
        """Keys of entities declared on the current link (cleared on reconnect)."""
        ...

    @property
    def topology(self) -> RecoveryRecord:
        """The recovery record replayed after a reconnect."""
        ...


async def declare_exchange(
    exchange: Exchange,
    channel: AsyncChannel,
    record: Record | None = None,
    *,
    passive: bool | None = None,
    nowait: bool = False,
) -> None:
    """Declare ``exchange`` (or, when passive, check that it exists)."""
    if exchange.no_declare or not exchange.name:
        return
    passive = exchange.passive if passive is None else passive
    await channel.exchange_declare(
        exchange=exchange.name, type=exchange.type, passive=passive, durable=exchange.durable,
        auto_delete=exchange.auto_delete, nowait=nowait, arguments=exchange.arguments,
    )  # fmt: skip
    if record is not None and not passive:
        if exchange.can_cache_declaration:
            record.declared_entities.add(exchange.declaration_key)
        if exchange.recover:
            record.topology.record_exchange(exchange)


async def queue_declare(
    queue: Queue,
    channel: AsyncChannel,
    record: Record | None = None,
    *,
    passive: bool = False,
    nowait: bool = False,
) -> QueueDeclareOk | None:
    """Declare only the queue; a server-named queue that has its name is only checked."""
    ok = await channel.queue_declare(
        queue=queue.name, passive=passive or (queue.server_named and bool(queue.name)),
        durable=queue.durable, exclusive=queue.exclusive, auto_delete=queue.auto_delete,
        nowait=nowait, arguments=queue.declare_arguments,
    )  # fmt: skip
    if ok is not None:
        if not queue.name:
            queue.name = ok.queue
        if queue.on_declared is not None:
            queue.on_declared(*ok)
    if record is not None and not passive and queue.recover and queue.name:
        record.topology.record_queue(queue)
    return ok


async def bind_queue(
    queue: Queue,
    exchange: str,
    channel: AsyncChannel,
    record: Record | None = None,
    routing_key: str = "",
    arguments: Mapping[str, Any] | None = None,
    nowait: bool = False,
) -> None:
    """Bind ``queue`` to the exchange named ``exchange`` (recorded for recovery)."""
    await channel.queue_bind(
        queue=queue.name, exchange=exchange, routing_key=routing_key, nowait=nowait,
        arguments=arguments,
    )  # fmt: skip
    if record is not None and queue.recover:
        record.topology.record_binding(queue, exchange, routing_key, arguments)


async def declare_queue(
    queue: Queue, channel: AsyncChannel, record: Record | None = None, *, nowait: bool = False
) -> str:
    """Declare the queue's exchange, the queue and its bindings; return the queue's name."""
    if queue.no_declare:
        return queue.name
    if queue.exchange is not None:
        await declare_exchange(queue.exchange, channel, record, nowait=nowait)
    await queue_declare(queue, channel, record, nowait=nowait)
    if queue.exchange is not None and queue.exchange.name:
        await bind_queue(
            queue, queue.exchange.name, channel, record, queue.routing_key,
            queue.binding_arguments, nowait,
        )  # fmt: skip
    for extra in queue.bindings:
        if extra.exchange is not None:
            await declare_exchange(extra.exchange, channel, record, nowait=nowait)
        await bind_queue(
            queue, extra.exchange_name, channel, record, extra.routing_key, extra.arguments,
            nowait,
        )  # fmt: skip
    if record is not None and queue.can_cache_declaration:
        record.declared_entities.add(queue.declaration_key)
    return queue.name


async def maybe_declare(
    entity: Exchange | Queue, channel: AsyncChannel, record: Record | None = None
) -> bool:
    """Declare ``entity`` unless ``record`` says this link already did; True if sent."""
    if entity.no_declare:
        return False
    if record is not None and entity.declaration_key in record.declared_entities:
        return False
    if isinstance(entity, Queue):
        await declare_queue(entity, channel, record)
    else:
        await declare_exchange(entity, channel, record)
    return True


async def delete_queue(
    queue: Queue,
    channel: AsyncChannel,
    record: Record | None = None,
    *,
    if_unused: bool = False,
    if_empty: bool = False,
) -> int:
    """Delete the queue and forget it for recovery; return its message count."""
    count = await channel.queue_delete(queue=queue.name, if_unused=if_unused, if_empty=if_empty)
    if record is not None:
        record.declared_entities.discard(queue.declaration_key)
        record.topology.forget_queue(queue)
    return count or 0


async def delete_exchange(
    exchange: Exchange,
    channel: AsyncChannel,
    record: Record | None = None,
    *,
    if_unused: bool = False,
) -> None:
    """Delete the exchange and forget it for recovery."""
    await channel.exchange_delete(exchange=exchange.name, if_unused=if_unused)
    if record is not None:
        record.declared_entities.discard(exchange.declaration_key)
        record.topology.forget_exchange(exchange)
