"""AMQP basic properties: their names, and the copies and checks every transport shares.

Transports that emulate a broker (memory, Redis) accept the same property
keywords as py-amqp, drop the ones it would drop, and encode text bodies the
way it does.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Mapping
from typing import Any

from broker.errors import ConfigurationError

__all__ = [
    "PROPERTY_NAMES",
    "coerce_body",
    "copy_table",
    "copy_value",
    "drop_unknown",
    "posix_seconds",
]

#: py-amqp's basic property names; other keywords are dropped, as py-amqp does.
PROPERTY_NAMES = frozenset(
    {
        "content_type",
        "content_encoding",
        "application_headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    }
)


#: Types a header value can have that need no copy.
_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


def copy_value(value: Any) -> Any:
    """A copy of an AMQP table value: nested dicts and lists are copied, scalars shared."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if isinstance(value, Mapping):
        return copy_table(value)
    if isinstance(value, list | tuple):
        return [copy_value(v) for v in value]
    return value


def copy_table(table: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a header table (fast for the usual flat table)."""
    out = dict(table)
    for key, value in out.items():
        if type(value) not in _IMMUTABLE:
            out[key] = copy_value(value)
    return out


def coerce_body(body: Any, properties: dict[str, Any]) -> bytes:
    """The body as bytes; text is encoded and ``content_encoding`` set if missing."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        # Like py-amqp: text is sent encoded, and says which encoding.
        return body.encode(properties.setdefault("content_encoding", "utf-8"))
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise ConfigurationError(f"message body must be bytes or str, got {type(body).__name__}")


def drop_unknown(properties: dict[str, Any]) -> None:
    """Remove unknown property names and ``None`` values, in place (py-amqp ignores them)."""
    if not PROPERTY_NAMES.issuperset(properties) or None in properties.values():
        for key in [k for k, v in properties.items() if v is None or k not in PROPERTY_NAMES]:
            del properties[key]


def posix_seconds(value: datetime.datetime) -> int:
    """Whole seconds since the epoch, AMQP's ``timestamp`` (a naive datetime counts as UTC)."""
    return calendar.timegm(value.utctimetuple())
