"""The ``memory://`` transport: an in-process AMQP-like broker.

Every memory connection in the process shares one broker, with state kept
apart per virtual host. Channels speak py-amqp's method names, keywords and
defaults, so code written against a channel runs here and on ``amqp://``
alike: direct, topic, fanout and headers exchanges, the default exchange,
acks, rejects, prefetch, server-named, exclusive and auto-delete queues.

Behaviour worth knowing:

* Consumer callbacks run on the thread that calls
  :meth:`MemoryConnection.drain_events`, never on the publisher's thread. A
  publish wakes a waiting ``drain_events`` at once (no polling).
* Unacked messages go back to their queue, flagged ``redelivered`` and at
  their original position, when their channel or connection closes.
* Channel errors carry RabbitMQ's reply codes and texts and close the channel;
  later calls on it raise :class:`~broker.errors.RecoverableChannelError`.
  Where RabbitMQ reports an error asynchronously (publishing to a missing
  exchange) or closes the whole connection (``immediate=True``,
  ``prefetch_size``, a reused consumer tag), the memory broker raises at once
  from the call and closes only the channel.
* Publishes are synchronous, so they are always "confirmed"; a ``mandatory``
  message that no queue takes is handed to ``channel.on_return`` before
  :meth:`MemoryChannel.basic_publish` returns.
* Queue arguments are stored and compared on redeclare but not enforced (no
  TTL, length limits or dead-lettering).

:func:`reset` wipes every virtual host (tests call it between tests) and
:func:`inspect` reports a virtual host's queues and exchanges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from broker.errors import ConfigurationError
from transports import base
from transports._shared.replies import EXCHANGE_TYPES
from transports.memory.channel import MemoryChannel
from transports.memory.connection import MemoryConnection
from transports.memory.inspection import ExchangeInfo, QueueInfo, inspect
from transports.memory.message import Message
from transports.memory.vhost import open_session, reset

__all__ = [
    "ExchangeInfo",
    "MemoryChannel",
    "MemoryConnection",
    "Message",
    "QueueInfo",
    "Transport",
    "inspect",
    "reset",
]


class Transport(base.Transport):
    """The ``memory://`` transport: connections to the in-process broker."""

    name: ClassVar[str] = "memory"
    default_port: ClassVar[int | None] = None
    capabilities: ClassVar[base.Capabilities] = base.Capabilities(
        heartbeats=False, publisher_confirms=True, exchange_types=EXCHANGE_TYPES
    )

    def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> MemoryConnection:
        """Open a connection to ``params.virtual_host`` (host, port and login are ignored)."""
        if not isinstance(params.virtual_host, str):
            raise ConfigurationError(f"virtual_host must be a string, got {params.virtual_host!r}")
        vhost, session = open_session(params.virtual_host)
        return MemoryConnection(params, vhost, session)
