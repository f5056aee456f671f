"""``kombu.common``'s names (see :mod:`broker.messaging.common`); re-exports only."""

from __future__ import annotations

from broker.messaging.common import (
    Broadcast,
    collect_replies,
    drain_consumer,
    eventloop,
    ignore_errors,
    itermessages,
    maybe_declare,
    send_reply,
    uuid,
)

__all__ = [
    "Broadcast",
    "collect_replies",
    "drain_consumer",
    "eventloop",
    "ignore_errors",
    "itermessages",
    "maybe_declare",
    "send_reply",
    "uuid",
]
