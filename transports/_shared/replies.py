"""Channel errors with RabbitMQ's reply codes and wording, shared by the emulating transports.

The memory and Redis transports emulate AMQP's broker-side checks; both raise
these, so an application sees the same exception, code and text whichever of
them (or RabbitMQ itself) it runs on. :func:`from_reply_text` turns a reply
text such as ``"NOT_FOUND - no queue 'q' in vhost '/'"`` (as the Redis
transport's script reports it) back into the matching exception.

Both also share the exchange types they route (:data:`EXCHANGE_TYPES`) and
the error for a call on a closed channel (:func:`channel_closed`).
"""

from __future__ import annotations

from typing import Any

from broker.errors import (
    AccessRefused,
    ChannelError,
    ConfigurationError,
    IrrecoverableChannelError,
    NotFound,
    PreconditionFailed,
    RecoverableChannelError,
)

__all__ = [
    "EXCHANGE_TYPES",
    "access_refused",
    "channel_closed",
    "check_exchange_type",
    "from_reply_text",
    "inequivalent",
    "locked_error",
    "not_found",
    "not_implemented",
    "precondition",
]


#: The exchange types the emulating transports route (AMQP 0-9-1's standard four).
EXCHANGE_TYPES = frozenset({"direct", "topic", "fanout", "headers"})


def check_exchange_type(kind: str, exchange: str, transport: str) -> None:
    """Refuse an exchange type the transport cannot route (bad input, not a broker error)."""
    if kind not in EXCHANGE_TYPES:
        raise ConfigurationError(
            f"exchange type {kind!r} for {exchange!r} is not supported by the {transport} "
            f"transport; use one of {', '.join(sorted(EXCHANGE_TYPES))}"
        )


def channel_closed(channel_id: int, why: str | None) -> RecoverableChannelError:
    """What a call on a closed channel raises (``why``: the error that closed it)."""
    reason = f" ({why})" if why else ""
    return RecoverableChannelError(
        f"channel {channel_id} is closed{reason}; open a new channel", reply_code=504
    )


def not_found(kind: str, name: str, vhost: str) -> NotFound:
    return NotFound(f"NOT_FOUND - no {kind} '{name}' in vhost '{vhost}'", reply_code=404)


def precondition(text: str) -> PreconditionFailed:
    return PreconditionFailed(f"PRECONDITION_FAILED - {text}", reply_code=406)


def access_refused(text: str) -> AccessRefused:
    return AccessRefused(f"ACCESS_REFUSED - {text}", reply_code=403)


def not_implemented(text: str) -> IrrecoverableChannelError:
    return IrrecoverableChannelError(f"NOT_IMPLEMENTED - {text}", reply_code=540)


def inequivalent(arg: str, kind: str, name: str, vhost: str, got: Any, now: Any) -> ChannelError:
    return precondition(
        f"inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': "
        f"received {got!r} but current is {now!r}"
    )


def locked_error(name: str, vhost: str) -> RecoverableChannelError:
    return RecoverableChannelError(
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost "
        f"'{vhost}'. It could be originally declared on another connection or the exclusive "
        "property value does not match that of the original declaration.",
        reply_code=405,
    )


_BY_NAME: dict[str, tuple[type[ChannelError], int]] = {
    "NOT_FOUND": (NotFound, 404),
    "PRECONDITION_FAILED": (PreconditionFailed, 406),
    "ACCESS_REFUSED": (AccessRefused, 403),
    "RESOURCE_LOCKED": (RecoverableChannelError, 405),
    "NOT_ALLOWED": (IrrecoverableChannelError, 530),
    "NOT_IMPLEMENTED": (IrrecoverableChannelError, 540),
}


def from_reply_text(text: str) -> ChannelError | None:
    """The channel error a ``"NAME - detail"`` reply text stands for, else ``None``."""
    name, sep, _ = text.partition(" - ")
    found = _BY_NAME.get(name) if sep else None
    if found is None:
        return None
    cls, code = found
    return cls(text, reply_code=code)
