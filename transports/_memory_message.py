"""Messages of the memory transport, and the copies that keep them immutable.

A published message's body and properties are snapshotted once at publish
time; every delivery hands out fresh copies of the properties, so neither a
publisher nor a consumer can change what another one sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigurationError
from transports._memory_broker import Entry

if TYPE_CHECKING:
    from transports._memory_channel import MemoryChannel

__all__ = [
    "PROPERTY_NAMES",
    "Message",
    "coerce_body",
    "copy_table",
    "copy_value",
    "received",
    "snapshot",
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


def snapshot(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The known, non-None properties, with header tables copied."""
    out = dict(properties)
    if not out.keys() <= PROPERTY_NAMES or None in out.values():
        out = {k: v for k, v in out.items() if v is not None and k in PROPERTY_NAMES}
    headers = out.get("application_headers")
    if headers:
        out["application_headers"] = copy_table(headers)
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


class Message:
    """A message as the memory transport delivers it (py-amqp's attribute names).

    Attributes:
        body: the payload, as bytes.
        properties: basic properties by py-amqp name, ``application_headers`` included.
        delivery_info: ``exchange``, ``routing_key``, ``redelivered``,
            ``delivery_tag`` and ``consumer_tag`` (pushed) or ``message_count``
            (``basic_get``).
        channel: the channel that received it, else ``None``.
    """

    __slots__ = ("body", "channel", "delivery_info", "properties")

    def __init__(
        self, body: Any = b"", channel: MemoryChannel | None = None, **properties: Any
    ) -> None:
        # ``properties`` is a fresh dict; nested headers are copied at publish.
        if not properties.keys() <= PROPERTY_NAMES or None in properties.values():
            properties = {
                k: v for k, v in properties.items() if v is not None and k in PROPERTY_NAMES
            }
        self.properties = properties
        self.body = body if type(body) is bytes else coerce_body(body, properties)
        self.channel = channel
        self.delivery_info: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, Any]:
        """The application headers (an empty dict when there are none)."""
        headers: dict[str, Any] | None = self.properties.get("application_headers")
        return headers if headers is not None else {}

    @property
    def delivery_tag(self) -> int:
        """The channel's tag for this delivery, used to ack or reject it."""
        tag: int = self.delivery_info.get("delivery_tag", 0)
        return tag

    def __repr__(self) -> str:
        return f"<memory Message {len(self.body)} bytes delivery_info={self.delivery_info!r}>"


def received(entry: Entry, channel: MemoryChannel, info: dict[str, Any]) -> Message:
    """A delivered copy of a stored entry."""
    message = Message.__new__(Message)
    message.body = entry.body
    properties = dict(entry.properties)
    headers = properties.get("application_headers")
    if headers:
        properties["application_headers"] = copy_table(headers)
    message.properties = properties
    message.delivery_info = info
    message.channel = channel
    return message
