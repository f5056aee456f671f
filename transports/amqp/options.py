"""Validation of connection parameters and the py-amqp connection arguments built from them.

Pure functions, no I/O: bad input raises
:class:`~broker.errors.ConfigurationError` naming the parameter, the value
and what is allowed, before any socket is opened.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from broker.errors import ConfigurationError
from transports._shared.tls import TLSSettings
from transports.base import ConnectionParams

__all__ = ["LOGIN_METHODS", "driver_kwargs"]

LOGIN_METHODS = frozenset({"AMQPLAIN", "PLAIN", "EXTERNAL", "GSSAPI"})
_MAX_SHORT = 65535
_MIN_FRAME_MAX = 4096  # AMQP 0-9-1 frame-min-size


def _product_version() -> str:
    try:
        return version("brokerpool")
    except PackageNotFoundError:  # running from a source checkout
        return "unknown"


_PRODUCT = {
    "product": "brokerpool",
    "product_version": _product_version(),
    "platform": f"Python {platform.python_version()}",
    "information": "brokerpool py-amqp transport",
}


def driver_kwargs(params: ConnectionParams, tls: TLSSettings | None) -> dict[str, Any]:
    """Validate ``params`` and build py-amqp's connection arguments (no I/O)."""
    if not isinstance(params.port, int) or not 0 < params.port <= _MAX_SHORT:
        raise ConfigurationError(f"port must be an integer in 1..65535, got {params.port!r}")
    login_method = params.login_method
    if login_method is not None:
        login_method = login_method.upper()
        if login_method not in LOGIN_METHODS:
            raise ConfigurationError(
                f"login_method {params.login_method!r} is not supported; "
                f"use one of {', '.join(sorted(LOGIN_METHODS))}"
            )
    host = f"[{params.hostname}]" if ":" in params.hostname else params.hostname
    options = params.transport_options
    return {
        "host": f"{host}:{params.port}",
        "userid": params.userid if params.userid is not None else "guest",
        "password": params.password if params.password is not None else "guest",
        "login_method": login_method,
        "virtual_host": params.virtual_host,
        "connect_timeout": _connect_timeout(params.connect_timeout),
        "heartbeat": _heartbeat(params.heartbeat),
        "client_properties": _client_properties(params),
        "tls_context": tls.context if tls else None,
        "server_hostname": tls.server_hostname if tls else None,
        "wanted_channel_max": _limit(options, "channel_max", 1, _MAX_SHORT),
        "wanted_frame_max": _limit(options, "frame_max", _MIN_FRAME_MAX, 2**31 - 1),
    }


def _connect_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(
            f"connect_timeout must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)


def _heartbeat(value: float) -> int:
    """AMQP heartbeats are whole seconds: round a fraction up, 0 means off."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(
            f"heartbeat must be a number of seconds >= 0 (0 turns heartbeats off), got {value!r}"
        )
    seconds = math.ceil(value)
    if seconds > _MAX_SHORT:
        raise ConfigurationError(f"heartbeat must be at most {_MAX_SHORT} s, got {value!r}")
    return seconds


def _limit(options: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"transport option {key!r} must be an integer in {low}..{high}, got {value!r}"
        )
    return value


def _client_properties(params: ConnectionParams) -> dict[str, Any]:
    props: dict[str, Any] = dict(_PRODUCT)
    if params.connection_name:
        props["connection_name"] = params.connection_name
    props.update(params.client_properties)
    if "capabilities" in props:
        # py-amqp adds its negotiated flags in place: never touch the caller's dict.
        props["capabilities"] = dict(props["capabilities"])
    return props
