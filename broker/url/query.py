"""The query options a broker URL accepts: the table, converters and validation.

Each :class:`URLOption` converts a query value (a string from a URL, or an
already converted value given in code) and writes it back as text, so that
``parse_url(format_url(...))`` round-trips. :func:`normalise_options`
validates a whole set and gathers the ``ssl_*`` keys into one ``ssl`` dict.
"""

from __future__ import annotations

import difflib
import math
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["URL_OPTIONS", "InvalidValue", "URLOption", "normalise_options", "unknown_option"]

_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class InvalidValue(ValueError):
    """Internal: a rejected value; callers add the context (which URL)."""


@dataclass(frozen=True, slots=True)
class URLOption:
    """One known query option: converter, writer and a one-line description."""

    name: str
    convert: Callable[[object], Any]
    to_text: Callable[[Any], str]
    description: str


def _float_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _number(minimum: float, *, inclusive: bool) -> Callable[[object], float]:
    allowed = f"a finite number {'>=' if inclusive else '>'} {minimum:g}"

    def convert(value: object) -> float:
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"expected {allowed}")
        number = float(value)
        if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive):
            raise InvalidValue(f"expected {allowed}")
        return number

    return convert


def _integer(low: int, high: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidValue(f"expected an integer in {low}..{high}")
        return value

    return convert


_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}  # fmt: skip


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    raise InvalidValue("expected one of true/false, 1/0, yes/no, on/off")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValue("expected a non-empty string")
    return value


def _login_method(value: object) -> str:
    if isinstance(value, str) and value.upper() in ("AMQPLAIN", "PLAIN", "EXTERNAL"):
        return value.upper()
    raise InvalidValue("expected one of AMQPLAIN, PLAIN, EXTERNAL")


_CERT_REQS = {mode.name[5:].lower(): mode for mode in ssl.VerifyMode}  # none/optional/required


def _cert_reqs(value: object) -> ssl.VerifyMode:
    if isinstance(value, ssl.VerifyMode):
        return value
    if isinstance(value, str):
        name = value.lower().removeprefix("cert_")
        if name in _CERT_REQS:
            return _CERT_REQS[name]
    raise InvalidValue("expected none, optional or required (or CERT_NONE, CERT_OPTIONAL, ...)")


_bool_text: Callable[[bool], str] = lambda value: str(value).lower()  # noqa: E731
_OPTIONS = (
    URLOption("heartbeat", _number(0, inclusive=True), _float_text,
              "heartbeat interval in seconds; 0 turns heartbeats off"),
    URLOption("connect_timeout", _number(0, inclusive=False), _float_text,
              "seconds allowed for the TCP connect and AMQP handshake"),
    URLOption("login_method", _login_method, str, "SASL mechanism: AMQPLAIN, PLAIN or EXTERNAL"),
    URLOption("ssl", _boolean, _bool_text, "use TLS with default settings (true/false)"),
    URLOption("ssl_ca_certs", _text, str, "file of CA certificates to trust"),
    URLOption("ssl_certfile", _text, str, "client certificate file"),
    URLOption("ssl_keyfile", _text, str, "client private key file"),
    URLOption("ssl_cert_reqs", _cert_reqs, lambda m: m.name[5:].lower(),
              "server certificate check: none, optional or required"),
    URLOption("ssl_check_hostname", _boolean, _bool_text,
              "check that the certificate matches the host name"),
    URLOption("ssl_server_hostname", _text, str,
              "host name sent for SNI and checked against the certificate"),
    URLOption("connection_name", _text, str,
              "name shown for the connection in the broker's management UI"),
    URLOption("frame_max", _integer(4096, 2**31 - 1), str, "largest frame size in bytes"),
    URLOption("channel_max", _integer(1, 65535), str, "most channels per connection"),
)  # fmt: skip

#: Every query key a broker URL accepts, in the order :meth:`BrokerURL.as_uri` writes them.
URL_OPTIONS: Mapping[str, URLOption] = MappingProxyType({o.name: o for o in _OPTIONS})
_SSL_KEYS = {name: name[4:] for name in URL_OPTIONS if name.startswith("ssl_")}


def unknown_option(key: object) -> InvalidValue:
    """The error for a query key not in the table, with a "did you mean"."""
    close = difflib.get_close_matches(str(key).lower(), list(URL_OPTIONS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InvalidValue(f"unknown option {key!r}{hint}; valid options: {', '.join(URL_OPTIONS)}")


def normalise_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and convert options given as URL strings or as converted values."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if key == "ssl" and isinstance(value, Mapping):
            flat["ssl"] = True
            for sub, sub_value in value.items():
                if f"ssl_{sub}" not in _SSL_KEYS:
                    allowed = ", ".join(_SSL_KEYS.values())
                    raise InvalidValue(f"unknown ssl option {sub!r}; allowed: {allowed}")
                flat[f"ssl_{sub}"] = sub_value
        elif key in URL_OPTIONS:
            flat[key] = value
        else:
            raise unknown_option(key)
    result: dict[str, Any] = {}
    ssl_options: dict[str, Any] = {}
    for name, option in URL_OPTIONS.items():  # canonical order, so equal options format alike
        if name in flat:
            try:
                value = option.convert(flat[name])
            except InvalidValue as exc:
                raise InvalidValue(f"option {name}={flat[name]!r} is invalid: {exc}") from None
            (ssl_options if name in _SSL_KEYS else result)[_SSL_KEYS.get(name, name)] = value
    if ssl_options:
        if result.get("ssl") is False:
            given = ", ".join(f"ssl_{k}" for k in ssl_options)
            raise InvalidValue(f"option ssl=false contradicts {given}; drop one or the other")
        result["ssl"] = ssl_options
    return result
