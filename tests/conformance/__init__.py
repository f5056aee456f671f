"""The channel conformance suite: one set of tests every transport passes.

This module holds the suite's helpers. Where RabbitMQ answers asynchronously,
they wait for the outcome with a deadline, so a synchronous transport and the
real broker pass the same assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transports.base import Channel, TransportConnection

__all__ = [
    "DEADLINE",
    "Connect",
    "Names",
    "declare_bound",
    "get",
    "message_count",
    "publish",
    "routed",
]

#: A factory of connections of the transport under test.
Connect = Callable[[], TransportConnection]


class Names:
    """Unique queue and exchange names for one test, remembered for cleanup."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        name = f"{self.prefix}-{label}"
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = f"{self.prefix}-{label}"
        self.exchanges.append(name)
        return name


DEADLINE = 5.0  # generous: only reached when something is wrong


def publish(
    channel: Channel, routing_key: str, body: bytes, exchange: str = "", **props: Any
) -> None:
    channel.basic_publish(channel.prepare_message(body, **props), exchange, routing_key)


def get(channel: Channel, queue: str, no_ack: bool = False) -> Any:
    """basic_get, waiting briefly for a message that RabbitMQ may still be routing."""
    deadline = time.monotonic() + DEADLINE
    while True:
        message = channel.basic_get(queue, no_ack=no_ack)
        if message is not None or time.monotonic() > deadline:
            return message
        time.sleep(0.01)


def message_count(connection: TransportConnection, queue: str) -> int:
    with connection.channel() as ch:
        ok = ch.queue_declare(queue, passive=True)
        assert ok is not None
        return ok.message_count


def routed(channel: Channel, queues: list[str]) -> dict[str, list[bytes]]:
    """Every message waiting in each queue, by body."""
    found: dict[str, list[bytes]] = {}
    for queue in queues:
        bodies = []
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            bodies.append(message.body)
        found[queue] = sorted(bodies)
    return found


def declare_bound(
    channel: Channel, names: Names, exchange: str, kind: str, bindings: dict[str, list[Any]]
) -> dict[str, str]:
    """Declare ``exchange`` and one queue per label, bound with the given keys or arguments."""
    channel.exchange_declare(exchange, kind, auto_delete=False)
    queues = {}
    for label, keys in bindings.items():
        queue = queues[label] = names.queue(label)
        channel.queue_declare(queue, auto_delete=False)
        for key in keys:
            if isinstance(key, dict):
                channel.queue_bind(queue, exchange, "", arguments=key)
            else:
                channel.queue_bind(queue, exchange, key)
    return queues
