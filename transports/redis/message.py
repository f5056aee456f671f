"""Messages of the Redis transport: how they are stored, and the objects handed out.

A stored message is one Redis string::

    flag (1 byte)  header length (4 bytes, big-endian)  header (JSON)  body

``flag`` is ``b"1"`` once the message has been delivered and put back (the
AMQP ``redelivered`` flag; the broker script rewrites only this byte). The
header holds the basic properties, the exchange and the routing key. Header
values JSON cannot carry directly are tagged: ``bytes`` as
``{"$bytes": base64}``, ``datetime`` as ``{"$datetime": isoformat}`` and
``Decimal`` as ``{"$decimal": text}``; they come back as the same types.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import struct
from collections.abc import Mapping
from typing import Any

from transports._shared.properties import coerce_body, drop_unknown

__all__ = ["Message", "decode", "encode", "headers_json"]

_LENGTH = struct.Struct(">I")
_HEADER_AT = 1 + _LENGTH.size


def _tagged(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, Mapping):
        return dict(value)  # application_headers may be any mapping
    # Published properties were checked (transports._shared.validation) before they got here.
    raise TypeError(f"{type(value).__name__} is not a field-table value")


def _untagged(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$bytes" in obj:
            return base64.b64decode(obj["$bytes"])
        if "$datetime" in obj:
            return datetime.datetime.fromisoformat(obj["$datetime"])
        if "$decimal" in obj:
            return decimal.Decimal(obj["$decimal"])
    return obj


_encoder = json.JSONEncoder(default=_tagged, separators=(",", ":"), ensure_ascii=False)
_decoder = json.JSONDecoder(object_hook=_untagged)


def encode(body: bytes, properties: dict[str, Any], exchange: str, routing_key: str) -> bytes:
    """The stored form of a new (not redelivered) message."""
    header = _encoder.encode([properties, exchange, routing_key]).encode()
    return b"0" + _LENGTH.pack(len(header)) + header + body


def decode(item: bytes) -> tuple[bool, bytes, dict[str, Any], str, str]:
    """``(redelivered, body, properties, exchange, routing_key)`` of a stored message."""
    (size,) = _LENGTH.unpack_from(item, 1)
    end = _HEADER_AT + size
    properties, exchange, routing_key = _decoder.decode(item[_HEADER_AT:end].decode())
    return item[:1] == b"1", item[end:], properties, exchange, routing_key


def headers_json(properties: dict[str, Any]) -> str:
    """The application headers as JSON, for the broker script's headers exchanges."""
    headers = properties.get("application_headers")
    return _encoder.encode(headers) if headers else "{}"


class Message:
    """A message of the Redis transport (py-amqp's attribute names).

    Attributes:
        body: the payload, as bytes.
        properties: basic properties by py-amqp name, ``application_headers`` included.
        delivery_info: ``exchange``, ``routing_key``, ``redelivered``,
            ``delivery_tag`` and ``consumer_tag`` (pushed) or ``message_count``
            (``basic_get``); empty for a message that was not delivered.
        delivery_tag: the channel's tag for this delivery (0 when not delivered).
        channel: the channel that received it, else ``None``.
    """

    __slots__ = ("body", "channel", "delivery_info", "delivery_tag", "properties")

    def __init__(self, body: Any = b"", channel: Any = None, **properties: Any) -> None:
        drop_unknown(properties)
        self.properties: dict[str, Any] = properties
        self.body: bytes = body if type(body) is bytes else coerce_body(body, properties)
        self.channel: Any = channel
        self.delivery_tag = 0
        self.delivery_info: dict[str, Any] = {}

    @classmethod
    def delivered(
        cls,
        item: bytes,
        channel: Any,
        tag: int,
        consumer_tag: str | None = None,
        message_count: int | None = None,
    ) -> Message:
        """A message taken from a queue, as ``channel`` delivers it."""
        redelivered, body, properties, exchange, routing_key = decode(item)
        message = cls.__new__(cls)
        message.body = body
        message.properties = properties
        message.channel = channel
        message.delivery_tag = tag
        info: dict[str, Any] = {
            "delivery_tag": tag,
            "redelivered": redelivered,
            "exchange": exchange,
            "routing_key": routing_key,
        }
        if consumer_tag is not None:
            info["consumer_tag"] = consumer_tag
        if message_count is not None:
            info["message_count"] = message_count
        message.delivery_info = info
        return message

    @property
    def headers(self) -> dict[str, Any]:
        """The application headers (an empty dict when there are none)."""
        headers: dict[str, Any] | None = self.properties.get("application_headers")
        return headers if headers is not None else {}

    def __repr__(self) -> str:
        return f"<redis Message {len(self.body)} bytes delivery_info={self.delivery_info!r}>"
