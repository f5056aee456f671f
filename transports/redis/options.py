"""Validation of Redis connection parameters, and the redis-py arguments built from them.

Pure functions, no I/O: bad input raises
:class:`~broker.errors.ConfigurationError` naming the key, the value and what
is allowed, before any socket is opened.

URL form: ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for
TLS). The path is the database number (``/`` or none means 0). Redis has no
default login: without a password in the URL or the ``password=`` keyword
the connection does not authenticate.

Every key of one database and prefix starts with :func:`keyspace`:
``<key_prefix>{<db>}:``. The braces are a Redis Cluster hash tag, so all the
keys the broker script touches in one call hash to one slot; a prefix that
carries a tag of its own (``{orders}:``) takes precedence, as Redis hashes the
first ``{...}`` of a key.
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from broker.errors import ConfigurationError
from broker.timeouts import check_seconds
from transports._shared.tls import TLSSettings, tls_settings
from transports.base import ConnectionParams

__all__ = [
    "ALIASES",
    "DEFAULTS",
    "RedisSettings",
    "check",
    "client_kwargs",
    "command_timeout",
    "keyspace",
    "replica_wait",
    "settings",
]

#: Transport options of the Redis transport and their defaults (``min_replicas``:
#: ``None`` means 1 while the master has a replica connected, else 0).
DEFAULTS: Mapping[str, Any] = {
    "visibility_timeout": 300.0,
    "key_prefix": "brokerpool:",
    "socket_timeout": 10.0,
    "max_batch": 100,
    "min_replicas": None,
    "replica_timeout": 2.0,
}
#: Other names accepted for an option: kombu's Redis transport calls the key prefix
#: ``global_keyprefix``, so kombu's transport options work unchanged.
ALIASES: Mapping[str, str] = {"global_keyprefix": "key_prefix"}
#: Options the façade reads from ``transport_options`` on every transport.
_SHARED = frozenset({"confirm_publish"})
_MAX_DB = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """What the Redis transport needs beyond the host and the login."""

    db: int
    key_prefix: str
    visibility_timeout: float
    socket_timeout: float
    max_batch: int
    tls: TLSSettings | None
    #: Replicas a confirmed publish must reach; ``None``: 1 while the master has one.
    min_replicas: int | None = None
    #: The longest wait for them, in seconds.
    replica_timeout: float = 2.0

    @property
    def lease_ms(self) -> int:
        """How long a connection's lease runs between renewals, in milliseconds."""
        return max(1, round(self.visibility_timeout * 1000))

    @property
    def keyspace(self) -> str:
        """What every key of this database and prefix starts with (see :func:`keyspace`)."""
        return keyspace(self.key_prefix, self.db)


def keyspace(key_prefix: str, db: int) -> str:
    """The start of every key under ``key_prefix`` in database ``db``: ``<key_prefix>{<db>}:``.

    ``{<db>}`` is the Redis Cluster hash tag the keys share (unless the
    prefix carries one of its own, which then comes first and wins).
    """
    return f"{key_prefix}{{{db}}}:"


def settings(params: ConnectionParams, extra_options: Iterable[str] = ()) -> RedisSettings:
    """Validate ``params`` for Redis and build the TLS context (reads its files, no network).

    Args:
        params: the alternate's parameters.
        extra_options: transport options a transport built on this one adds
            (they are accepted here and checked by that transport).
    """
    return replace(_checked(params, extra_options), tls=tls_settings(params.ssl, params.hostname))


def check(params: ConnectionParams, extra_options: Iterable[str] = ()) -> None:
    """Validate ``params`` for Redis, all but the TLS settings (no I/O at all).

    What :class:`broker.Connection` runs for a Redis URL when it is made: a
    database path that is not a number, an unknown or bad transport option,
    or a bad timeout fails there, not on the first connect. ``extra_options``
    as for :func:`settings`.
    """
    _checked(params, extra_options)


def _checked(params: ConnectionParams, extra_options: Iterable[str]) -> RedisSettings:
    options = _unaliased(params.transport_options)
    valid = [*DEFAULTS, *extra_options]
    unknown = sorted(set(options) - set(valid) - _SHARED)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigurationError(
            f"unknown redis transport option(s) {', '.join(hints)}; "
            f"valid options: {', '.join(valid)}"
        )
    merged = {**DEFAULTS, **options}
    prefix = merged["key_prefix"]
    if not isinstance(prefix, str) or "\x00" in prefix:
        raise ConfigurationError(
            f"transport option 'key_prefix' must be a string without NUL, got {prefix!r}"
        )
    brace = prefix.find("{")
    if brace >= 0 and prefix[brace + 1 : brace + 2] == "}":
        # Redis hashes a whole key whose first "{" closes at once: no shared slot.
        raise ConfigurationError(
            f"transport option 'key_prefix' must not start a hash tag with '{{}}', got {prefix!r}"
        )
    replicas = merged["min_replicas"]
    if replicas is not None and (
        isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0
    ):
        raise ConfigurationError(
            f"transport option 'min_replicas' must be an integer >= 0 or None "
            f"(1 while the master has a replica), got {replicas!r}"
        )
    batch = merged["max_batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise ConfigurationError(
            f"transport option 'max_batch' must be an integer in 1..10000, got {batch!r}"
        )
    if not isinstance(params.port, int) or not 0 < params.port < 65536:
        raise ConfigurationError(f"port must be an integer in 1..65535, got {params.port!r}")
    check_seconds(params.heartbeat, "heartbeat", finite=True)
    if params.connect_timeout is not None:
        check_seconds(params.connect_timeout, "connect_timeout", positive=True, finite=True)
    return RedisSettings(
        db=_database(params.virtual_host),
        key_prefix=prefix,
        visibility_timeout=check_seconds(
            merged["visibility_timeout"], "visibility_timeout", positive=True, finite=True
        ),
        socket_timeout=check_seconds(
            merged["socket_timeout"], "socket_timeout", positive=True, finite=True
        ),
        max_batch=batch,
        tls=None,
        min_replicas=replicas,
        replica_timeout=check_seconds(
            merged["replica_timeout"], "replica_timeout", positive=True, finite=True
        ),
    )


def _unaliased(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options with each alias replaced by its option's own name.

    Raises:
        ConfigurationError: an option given twice, under its name and an alias.
    """
    options = dict(given)
    for alias, name in ALIASES.items():
        if alias in options:
            if name in options:
                raise ConfigurationError(
                    f"transport options {alias!r} and {name!r} are the same option "
                    f"(kombu's name and brokerpool's); give one of them"
                )
            options[name] = options.pop(alias)
    return options


def _database(virtual_host: str) -> int:
    text = virtual_host.strip("/")
    if not text:
        return 0
    if text.isascii() and text.isdigit() and int(text) <= _MAX_DB:
        return int(text)
    raise ConfigurationError(
        f"the path of a redis URL is the database number (redis://host:6379/0), "
        f"got virtual host {virtual_host!r}"
    )


def client_kwargs(params: ConnectionParams, found: RedisSettings) -> dict[str, Any]:
    """redis-py connection arguments (for :class:`redis.ConnectionPool`)."""
    kwargs: dict[str, Any] = {
        "host": params.hostname,
        "port": params.port,
        "db": found.db,
        "username": params.userid or None,
        "password": params.password,
        "socket_connect_timeout": params.connect_timeout,
        "socket_timeout": command_timeout(params, found),
        "socket_keepalive": True,
        "client_name": _client_name(params),
        "protocol": 2,
    }
    return kwargs


def command_timeout(params: ConnectionParams, found: RedisSettings) -> float:
    """How long one command may take: ``socket_timeout``, cut to two heartbeats when on."""
    if params.heartbeat:
        return min(found.socket_timeout, 2 * params.heartbeat)
    return found.socket_timeout


def replica_wait(params: ConnectionParams, found: RedisSettings) -> float:
    """How long a confirmed publish waits for replicas: ``replica_timeout``, at most half
    of :func:`command_timeout`, so that a slow ``WAIT`` is never taken for a dead server."""
    return min(found.replica_timeout, command_timeout(params, found) / 2)


def _client_name(params: ConnectionParams) -> str:
    name = params.connection_name or f"brokerpool-{socket.gethostname()}"
    # CLIENT SETNAME refuses spaces and newlines.
    return "".join("_" if ch.isspace() else ch for ch in name)
