"""The limits every transport enforces on a publish, checked before anything is sent.

RabbitMQ and the AMQP 0-9-1 wire format bound what a publish may carry. A
value outside those bounds used to fail late and differently per transport:
on ``amqp://`` as a raw ``struct.error``, or as a frame error that cost the
connection, or as a channel error from the broker; ``memory://`` and
``redis://`` accepted it. Every transport now calls :func:`check_route` and
:func:`check_properties` before it writes or stores anything, so a bad value
is a :class:`~broker.errors.ConfigurationError` naming the key and the value's
type, the same on every transport, and the connection, the channel and the
producer stay usable.

The limits (RabbitMQ 3.x, measured):

* ``exchange`` and ``routing_key``: :class:`str` of at most 255 bytes (UTF-8).
* ``priority``: an :class:`int` in 0..255.
* ``delivery_mode``: 1 (transient) or 2 (persistent); RabbitMQ refuses others.
* ``expiration``: milliseconds as a :class:`str` holding a non-negative
  integer (an optional sign, digits, nothing else) up to
  :data:`MAX_EXPIRATION_MS`, ten years, RabbitMQ's bound.
* ``timestamp``: seconds since the epoch as an :class:`int` in 0..2**64-1,
  or a :class:`~datetime.datetime` not before the epoch.
* the other basic properties (``content_type``, ``message_id``,
  ``correlation_id``, ...): :class:`str` of at most 255 bytes.
* ``application_headers``: a mapping whose keys are :class:`str` of at most
  255 bytes, and whose values are field-table values: ``str``, ``bytes``,
  ``bool``, ``int`` within 64-bit signed, ``float``, :class:`~decimal.Decimal`
  (at most 255 decimal places, unscaled value within 32-bit signed),
  :class:`~datetime.datetime` (not before the epoch), ``None``, and lists,
  tuples and dicts of those, nested to any depth.

Unknown property names and ``None`` values are not checked: every transport
drops them, as py-amqp does.

The plain publish -- a content type, an encoding and a delivery mode, what a
producer sends without options -- is checked with three lookups and a few
type tests; short text properties and delivery modes otherwise cost one pass
with a type test each; everything else goes through the full check.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from broker.errors import ConfigurationError
from transports._shared.properties import posix_seconds

__all__ = [
    "MAX_EXPIRATION_MS",
    "MAX_PRIORITY",
    "SHORTSTR_MAX",
    "check_properties",
    "check_route",
    "check_table",
]

#: Longest AMQP short string, in bytes: names, routing keys, header keys, text properties.
SHORTSTR_MAX: Final = 255
#: Highest message priority (an AMQP octet).
MAX_PRIORITY: Final = 255
#: Longest per-message TTL RabbitMQ accepts, in milliseconds (ten years).
MAX_EXPIRATION_MS: Final = 315_360_000_000

# A str of at most this many characters is at most SHORTSTR_MAX bytes in UTF-8
# (four bytes per character at most), so the common case needs no encoding.
_SURELY_SHORT = SHORTSTR_MAX // 4

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_UINT64_MAX = 2**64 - 1

#: Text properties (AMQP shortstr) that take any short string.
_TEXT_PROPERTIES = frozenset(
    {
        "content_type",
        "content_encoding",
        "correlation_id",
        "reply_to",
        "message_id",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    }
)

#: What RabbitMQ parses as an integer TTL (Erlang's string:to_integer, nothing left over).
_EXPIRATION = re.compile(r"[+-]?[0-9]+")

_TABLE_TYPES = (
    "str, bytes, bool, int (64-bit signed), float, Decimal, datetime, None, "
    "and lists and dicts of those"
)


def check_route(exchange: Any, routing_key: Any) -> None:
    """Check a publish's exchange name and routing key.

    Raises:
        ConfigurationError: either is not a :class:`str` of at most 255 bytes.
    """
    if (
        exchange.__class__ is str
        and routing_key.__class__ is str
        and len(exchange) <= _SURELY_SHORT
        and len(routing_key) <= _SURELY_SHORT
    ):
        return
    _check_shortstr("exchange", exchange)
    _check_shortstr("routing_key", routing_key)


def check_properties(properties: Mapping[str, Any]) -> None:
    """Check a message's basic properties (``application_headers`` included).

    Raises:
        ConfigurationError: a property (or a header in ``application_headers``)
            holds a value of a type or range AMQP and RabbitMQ do not accept;
            the message names it and its type.
    """
    if len(properties) == 3:
        # What a producer's plain publish sends; checked without a loop (the hot path).
        try:
            ctype = properties["content_type"]
            encoding = properties["content_encoding"]
            mode = properties["delivery_mode"]
        except KeyError:
            pass
        else:
            if (
                ctype.__class__ is str
                and encoding.__class__ is str
                and mode.__class__ is int
                and (mode == 1 or mode == 2)
                and len(ctype) <= _SURELY_SHORT
                and len(encoding) <= _SURELY_SHORT
            ):
                return
    for name, value in properties.items():
        kind = value.__class__
        if kind is str:
            if name in _TEXT_PROPERTIES and len(value) <= _SURELY_SHORT:
                continue
        elif kind is int:
            if name == "delivery_mode" and (value == 1 or value == 2):
                continue
        elif value is None:
            continue
        check = _PROPERTY_CHECKS.get(name)
        if check is not None:
            check(name, value)


def check_table(table: Any, label: str | None = None) -> None:
    """Check an AMQP field table: ``application_headers``, or a table nested in it.

    Args:
        table: the mapping to check.
        label: how the error names the table (a nested one); ``None`` for
            ``application_headers``, whose entries are named ``header 'key'``.

    Raises:
        ConfigurationError: ``table`` is not a mapping, a key is not a
            :class:`str` of at most 255 bytes, or a value is not a field-table value.
    """
    if table.__class__ is not dict and not isinstance(table, Mapping):
        raise ConfigurationError(
            f"application_headers must be a dict, got {type(table).__name__} {_shorten(table)}"
        )
    for key, value in table.items():
        if key.__class__ is not str or len(key) > _SURELY_SHORT:
            _check_key(label, key)
        kind = value.__class__
        if kind in _PLAIN_VALUES or (kind is int and _INT64_MIN <= value <= _INT64_MAX):
            continue
        _check_value(f"header {key!r}" if label is None else f"{label}[{key!r}]", value)


# -- values -------------------------------------------------------------------------------

#: Field-table value types that need no further check.
_PLAIN_VALUES = frozenset({str, bytes, bool, float, type(None)})


def _check_value(label: str, value: Any) -> None:
    """Check one field-table value (``label`` names it in the error)."""
    # py-amqp's order of isinstance tests, so subclasses are judged as it encodes them.
    if isinstance(value, str | bytes | bool | float) or value is None:
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ConfigurationError(
                f"{label} holds the int {value}, outside the 64-bit signed range an AMQP "
                f"field table can carry; send it as a str"
            )
        return
    if isinstance(value, decimal.Decimal):
        _check_decimal(label, value)
        return
    if isinstance(value, datetime.datetime):
        _check_datetime(label, value)
        return
    if isinstance(value, dict):
        check_table(value, label)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if item.__class__ not in _PLAIN_VALUES:
                _check_value(f"{label}[{index}]", item)
        return
    raise ConfigurationError(
        f"{label} holds {type(value).__name__} {_shorten(value)}, which an AMQP field table "
        f"cannot carry ({_TABLE_TYPES}); convert it first, e.g. with str()"
    )


def _check_key(label: str | None, key: Any) -> None:
    """Check a field-table key; ``label`` names the nested table it is in, if any."""
    place = "application_headers" if label is None else label
    if not isinstance(key, str):
        raise ConfigurationError(
            f"{place} has the key {_shorten(key)} of type {type(key).__name__}; "
            f"header keys must be str"
        )
    if _utf8_length(key) > SHORTSTR_MAX:
        raise ConfigurationError(
            f"{place} has the key {_shorten(key)}, {_utf8_length(key)} bytes long; "
            f"AMQP allows at most {SHORTSTR_MAX}"
        )


def _check_decimal(label: str, value: decimal.Decimal) -> None:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ConfigurationError(f"{label} holds the Decimal {value}; AMQP carries finite ones")
    unscaled = 0
    for digit in digits:
        unscaled = unscaled * 10 + digit
    if sign:
        unscaled = -unscaled
    if not -SHORTSTR_MAX <= exponent <= 0 or not _INT32_MIN <= unscaled <= _INT32_MAX:
        raise ConfigurationError(
            f"{label} holds the Decimal {value}, which an AMQP field table cannot carry "
            f"(at most {SHORTSTR_MAX} decimal places and an unscaled value within 32-bit "
            f"signed); send it as a str"
        )


def _check_datetime(label: str, value: datetime.datetime) -> None:
    if posix_seconds(value) < 0:
        raise ConfigurationError(
            f"{label} holds the datetime {value.isoformat()}, before the epoch "
            f"(1970-01-01 UTC), which AMQP timestamps cannot express"
        )


# -- properties ---------------------------------------------------------------------------


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_shortstr(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{name} must be a str, got {type(value).__name__} {_shorten(value)}"
        )
    if len(value) > _SURELY_SHORT and _utf8_length(value) > SHORTSTR_MAX:
        raise ConfigurationError(
            f"{name} {_shorten(value)} is {_utf8_length(value)} bytes long; "
            f"AMQP allows at most {SHORTSTR_MAX}"
        )


def _check_priority(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise ConfigurationError(
            f"priority must be an int in 0..{MAX_PRIORITY}, got {type(value).__name__} "
            f"{_shorten(value)}"
        )


def _check_delivery_mode(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
        raise ConfigurationError(
            f"delivery_mode must be 1 (transient) or 2 (persistent), got "
            f"{type(value).__name__} {_shorten(value)}"
        )


def _check_expiration(name: str, value: Any) -> None:
    _check_shortstr(name, value)
    if _EXPIRATION.fullmatch(value) is None or not 0 <= int(value) <= MAX_EXPIRATION_MS:
        raise ConfigurationError(
            f"expiration must be a str holding a whole number of milliseconds in "
            f"0..{MAX_EXPIRATION_MS}, got {_shorten(value)}"
        )


def _check_timestamp(name: str, value: Any) -> None:
    if isinstance(value, datetime.datetime):
        _check_datetime(name, value)
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT64_MAX:
        raise ConfigurationError(
            f"timestamp must be seconds since the epoch as a non-negative int (or a "
            f"datetime), got {type(value).__name__} {_shorten(value)}"
        )


def _check_headers(name: str, value: Any) -> None:
    check_table(value)


_PROPERTY_CHECKS: dict[str, Callable[[str, Any], None]] = {
    **dict.fromkeys(_TEXT_PROPERTIES, _check_shortstr),
    "priority": _check_priority,
    "delivery_mode": _check_delivery_mode,
    "expiration": _check_expiration,
    "timestamp": _check_timestamp,
    "application_headers": _check_headers,
}
