"""Snapshots of the in-process broker's queues and exchanges, for tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transports.memory.broker import LOCK
from transports.memory.vhost import vhosts

__all__ = ["ExchangeInfo", "QueueInfo", "inspect"]


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as :func:`inspect` sees it."""

    name: str
    messages: int
    unacked: int
    consumers: int
    durable: bool
    exclusive: bool
    auto_delete: bool


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """An exchange as :func:`inspect` sees it; bindings are ``(queue, key, arguments)``."""

    name: str
    type: str
    durable: bool
    auto_delete: bool
    bindings: tuple[tuple[str, str, dict[str, Any]], ...]


def inspect(virtual_host: str = "/") -> tuple[dict[str, QueueInfo], dict[str, ExchangeInfo]]:
    """Snapshot the queues and exchanges of one virtual host (empty when unused).

    Returns:
        ``(queues, exchanges)``, each a dict by name.
    """
    with LOCK:
        vhost = vhosts().get(virtual_host)
        if vhost is None:
            return {}, {}
        unacked: dict[int, int] = {}
        for session in vhost.sessions:
            for channel in session.channels.values():
                for queue, _, _ in channel.unacked.values():
                    unacked[id(queue)] = unacked.get(id(queue), 0) + 1
        queues = {
            q.name: QueueInfo(
                q.name,
                len(q.messages),
                unacked.get(id(q), 0),
                len(q.consumers),
                q.durable,
                q.owner is not None,
                q.auto_delete,
            )
            for q in vhost.queues.values()
        }
        exchanges = {
            e.name: ExchangeInfo(
                e.name,
                e.type,
                e.durable,
                e.auto_delete,
                tuple((q.name, rk, dict(args)) for q, rk, args in e.bindings.values()),
            )
            for e in vhost.exchanges.values()
        }
    return queues, exchanges
