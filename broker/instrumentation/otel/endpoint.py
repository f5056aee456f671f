"""Which broker a connection talks to, as attributes: system, address and port.

Asked on every publish and delivery, so the answer is cached per connection
and forgotten when it connects again (after a failover it is another broker).
The connection's password never appears: only its scheme, host and port.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import broker.instrumentation.otel.semconv as semconv
from broker.aio.connection import Connection as AsyncConnection
from broker.connection.connection import Connection
from broker.url.targets import Target

__all__ = ["Endpoints", "target_attributes"]

_NONE: dict[str, Any] = {}


def target_attributes(target: Target) -> dict[str, Any]:
    """``messaging.system``, ``server.address`` and ``server.port`` of one alternate."""
    return {
        semconv.SYSTEM: semconv.system_for(target.url.scheme),
        semconv.SERVER_ADDRESS: target.params.hostname,
        semconv.SERVER_PORT: target.params.port,
    }


def _attributes(conn: Connection | AsyncConnection) -> dict[str, Any]:
    scheme = conn.as_uri().partition("://")[0]
    host = conn.host  # hostname:port, or the hostname alone when the URL has no port
    hostname, port = host, ""
    if not host.endswith("]") and ":" in host:
        hostname, _, port = host.rpartition(":")
    attributes: dict[str, Any] = {
        semconv.SYSTEM: semconv.system_for(scheme),
        semconv.SERVER_ADDRESS: hostname.strip("[]"),
    }
    if port.isdigit():
        attributes[semconv.SERVER_PORT] = int(port)
    return attributes


class Endpoints:
    """Per-connection endpoint attributes, cached until the connection connects again."""

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[object, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def of(self, owner: object | None) -> dict[str, Any]:
        """The attributes of ``owner`` (a connection), empty for anything else. Do not modify."""
        if not isinstance(owner, Connection | AsyncConnection):
            return _NONE
        found = self._cache.get(owner)
        if found is None:
            found = _attributes(owner)
            with self._lock:
                self._cache[owner] = found
        return found

    def forget(self, owner: object) -> None:
        """``owner`` (re)connected, perhaps to another alternate: look it up afresh next time."""
        with self._lock:
            self._cache.pop(owner, None)

    def __repr__(self) -> str:
        return f"<Endpoints cached={len(self._cache)}>"
