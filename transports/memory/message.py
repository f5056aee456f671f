"""Messages of the memory transport, and the copies that keep them immutable.

A published message's body and properties are snapshotted once at publish
time; every delivery hands out its own copy of the properties (made when
they are first read), so neither a publisher nor a consumer can change what
another one sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transports import base
from transports._shared.properties import (
    PROPERTY_NAMES,
    coerce_body,
    copy_table,
    copy_value,
    drop_unknown,
)
from transports.memory.broker import Entry

__all__ = [
    "PROPERTY_NAMES",
    "Message",
    "coerce_body",
    "copy_table",
    "copy_value",
    "drop_unknown",
    "known_properties",
    "prepared",
    "received",
]


def known_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of the known, non-None properties, with header tables copied.

    Publishing stores a shallow copy of what it was given (header tables
    copied deeply); this makes each delivery's own, cleaned-up copy of it.
    """
    out = dict(properties)
    if not PROPERTY_NAMES.issuperset(out) or None in out.values():
        out = {k: v for k, v in out.items() if v is not None and k in PROPERTY_NAMES}
    headers = out.get("application_headers")
    if headers:
        out["application_headers"] = copy_table(headers)
    return out


class Message:
    """A message as the memory transport delivers it (py-amqp's attribute names).

    Attributes:
        body: the payload, as bytes.
        properties: basic properties by py-amqp name, ``application_headers`` included.
        delivery_info: ``exchange``, ``routing_key``, ``redelivered``,
            ``delivery_tag`` and ``consumer_tag`` (pushed) or ``message_count``
            (``basic_get``).
        delivery_tag: the channel's tag for this delivery, used to ack or reject it
            (0 for a message that was not delivered).
        channel: the channel that received it, else ``None``.
    """

    # A delivery is made on every message a consumer gets, and most consumers
    # never look at its properties or delivery_info: both are built from the
    # stored entry when first read. ``_source`` is ``(entry, redelivered,
    # consumer_tag, message_count)``, the last two ``None`` when not applicable.
    # prepare_message leaves dropping unknown and None properties until they
    # are read (``_checked``): publishing copies them and deliveries drop them.
    __slots__ = (
        "_checked",
        "_info",
        "_properties",
        "_source",
        "body",
        "channel",
        "delivery_tag",
    )

    def __init__(
        self, body: Any = b"", channel: base.Channel | None = None, **properties: Any
    ) -> None:
        # ``properties`` is a fresh dict; nested headers are copied at publish.
        drop_unknown(properties)
        self._properties: dict[str, Any] | None = properties
        self._checked = True
        self.body = body if type(body) is bytes else coerce_body(body, properties)
        self.channel = channel
        self.delivery_tag = 0
        self._info: dict[str, Any] | None = None
        self._source: Source | None = None

    @property
    def properties(self) -> dict[str, Any]:
        """Basic properties by py-amqp name (this message's own copy)."""
        properties = self._properties
        if properties is None:
            assert self._source is not None  # only deliveries start without properties
            properties = self._properties = known_properties(self._source[0].properties)
            self._checked = True
        elif not self._checked:
            drop_unknown(properties)
            self._checked = True
        return properties

    @properties.setter
    def properties(self, value: dict[str, Any]) -> None:
        self._properties = value
        self._checked = True

    @property
    def delivery_info(self) -> dict[str, Any]:
        """How it was delivered (empty for a message that was not)."""
        info = self._info
        if info is None:
            info = self._info = self._describe()
        return info

    @delivery_info.setter
    def delivery_info(self, value: dict[str, Any]) -> None:
        self._info = value
        self.delivery_tag = value.get("delivery_tag", 0)

    def _describe(self) -> dict[str, Any]:
        source = self._source
        if source is None:
            return {}
        entry, redelivered, consumer_tag, message_count = source
        info: dict[str, Any] = {}
        if consumer_tag is not None:
            info["consumer_tag"] = consumer_tag
        info["delivery_tag"] = self.delivery_tag
        info["redelivered"] = redelivered
        info["exchange"] = entry.exchange
        info["routing_key"] = entry.routing_key
        if message_count is not None:
            info["message_count"] = message_count
        return info

    @property
    def headers(self) -> dict[str, Any]:
        """The application headers (an empty dict when there are none)."""
        headers: dict[str, Any] | None = self.properties.get("application_headers")
        return headers if headers is not None else {}

    def __repr__(self) -> str:
        return f"<memory Message {len(self.body)} bytes delivery_info={self.delivery_info!r}>"


#: Where a delivered message's lazy attributes come from (see :class:`Message`).
Source = tuple[Entry, bool, "str | None", "int | None"]

_new_message = Message.__new__


def prepared(body: Any, properties: dict[str, Any]) -> Message:
    """A message to publish; ``properties`` is a fresh dict the message may keep."""
    message = _new_message(Message)
    if type(body) is bytes:
        message._checked = False  # checked when read; see Message
    else:
        drop_unknown(properties)
        body = coerce_body(body, properties)
        message._checked = True
    message._properties = properties
    message.body = body
    message.channel = None
    message.delivery_tag = 0
    message._info = None
    message._source = None
    return message


def received(
    entry: Entry,
    channel: base.Channel,
    tag: int,
    redelivered: bool,
    consumer_tag: str | None,
    message_count: int | None,
) -> Message:
    """A delivered copy of a stored entry (properties are copied when first read)."""
    message = _new_message(Message)
    message.body = entry.body
    message.channel = channel
    message.delivery_tag = tag
    message._properties = None
    message._info = None
    message._source = (entry, redelivered, consumer_tag, message_count)
    return message
