"""Turning a Connection's URL(s) and keyword arguments into per-host parameters.

Each alternate broker gets its own :class:`~transports.base.ConnectionParams`:
the URL's parts and query options win for that host, keyword arguments fill
what the URL leaves out, and the transport's defaults (port, TLS port) fill
the rest. Nothing is inherited from another alternate.
"""

from __future__ import annotations

import difflib
import hashlib
import ssl as _ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import transports
from broker.errors import ConfigurationError
from broker.timeouts import check_seconds
from broker.url.parse import TLS_SCHEMES, BrokerURL, ParsedEntry, format_url, parse_entries
from transports.base import ConnectionParams, Transport

__all__ = [
    "Target",
    "build_targets",
    "host_of",
    "target_identity",
    "unknown_keywords_message",
]

DEFAULT_VHOST = "/"

# URL query keys that travel in transport_options rather than as parameters.
_TRANSPORT_OPTION_KEYS = ("frame_max", "channel_max")


@dataclass(frozen=True, slots=True)
class Target:
    """One alternate broker: its URL, transport class and resolved parameters."""

    url: BrokerURL
    transport_cls: type[Transport]
    params: ConnectionParams

    def as_uri(self, *, include_password: bool = False, mask: str = "**") -> str:
        """The URL with every default filled in (password masked unless asked)."""
        p = self.params
        return _format(self.url.scheme, p, include_password=include_password, mask=mask)

    @property
    def host(self) -> str:
        """``hostname:port`` as shown to users."""
        return host_of(self.params)


def host_of(params: ConnectionParams) -> str:
    """``hostname:port`` of ``params`` as shown to users (IPv6 literals in brackets)."""
    name = f"[{params.hostname}]" if ":" in params.hostname else params.hostname
    return f"{name}:{params.port}" if params.port else name


def _format(scheme: str, p: ConnectionParams, *, include_password: bool, mask: str) -> str:
    return format_url(
        scheme,
        p.hostname,
        p.port or None,
        p.userid,
        p.password,
        p.virtual_host,
        None,
        include_password=include_password,
        mask=mask,
    )


def _check_ssl(value: Any) -> bool | Mapping[str, Any] | _ssl.SSLContext:
    if isinstance(value, bool | _ssl.SSLContext):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    raise ConfigurationError(
        f"ssl must be True/False, a dict of TLS options or an ssl.SSLContext, got {value!r}"
    )


def _parse_all(
    hostname: str | Sequence[str], alternates: Sequence[str] | None, scheme: str
) -> list[ParsedEntry]:
    """Every alternate, parsed: URLs or bare host names (kombu compatible), then ``alternates``."""
    if not isinstance(hostname, str | Sequence) or (
        not isinstance(hostname, str) and not all(isinstance(item, str) for item in hostname)
    ):
        raise ConfigurationError(
            f"hostname must be a URL, a host name or a list of them, got {hostname!r}"
        )
    entries: list[ParsedEntry] = []
    if isinstance(hostname, str) or hostname:
        entries += parse_entries(hostname, bare_scheme=scheme)
    if alternates:
        entries += parse_entries(alternates)
    if not entries:
        raise ConfigurationError("no broker URL given: hostname and alternates are both empty")
    return entries


def build_targets(
    hostname: str | Sequence[str],
    *,
    alternates: Sequence[str] | None,
    transport: str | type[Transport] | None,
    userid: str | None,
    password: str | None,
    virtual_host: str | None,
    port: int | None,
    ssl: Any,
    connect_timeout: float | None,
    heartbeat: float,
    login_method: str | None,
    transport_options: Mapping[str, Any],
    connection_name: str | None,
    client_properties: Mapping[str, Any] | None,
) -> tuple[Target, ...]:
    """Resolve every alternate into a :class:`Target`.

    Raises:
        ConfigurationError: a malformed URL or a bad keyword value.
        TransportNotFound: a scheme or ``transport`` that is not registered.
    """
    default_transport: type[Transport] | None = None
    if isinstance(transport, type):
        default_transport = transport
        default_scheme = transport.name
    else:
        default_scheme = transport or "amqp"
        transports.resolve(default_scheme)  # fail early with "did you mean"
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ConfigurationError(f"port must be an integer 1-65535, got {port!r}")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"port must be an integer 1-65535, got {port!r}")
    timeout = (
        None
        if connect_timeout is None
        else check_seconds(connect_timeout, "connect_timeout", positive=True, finite=True)
    )
    beat = check_seconds(heartbeat, "heartbeat", finite=True)
    ssl_value = _check_ssl(ssl)
    targets = []
    for entry in _parse_all(hostname, alternates, default_scheme):
        url = entry.url
        cls = (
            default_transport
            if default_transport is not None and url.scheme == default_scheme
            else transports.resolve(url.scheme)
        )
        opts = url.options
        url_ssl = opts.get(
            "ssl", ssl_value if url.scheme not in TLS_SCHEMES else (ssl_value or True)
        )
        tls_on = bool(url_ssl) if not isinstance(url_ssl, Mapping) else True
        default_port = cls.default_ssl_port if tls_on and cls.default_ssl_port else cls.default_port
        topts = dict(transport_options)
        topts.update({k: opts[k] for k in _TRANSPORT_OPTION_KEYS if k in opts})
        params = ConnectionParams(
            hostname=url.hostname or "localhost",
            port=url.port or port or default_port or 0,
            userid=url.userid if url.userid is not None else (userid or cls.default_userid),
            password=url.password
            if url.password is not None
            else (password or cls.default_password),
            virtual_host=url.virtual_host or virtual_host or DEFAULT_VHOST,
            ssl=url_ssl,
            connect_timeout=opts.get("connect_timeout", timeout),
            heartbeat=opts.get("heartbeat", beat),
            login_method=opts.get("login_method", login_method),
            connection_name=opts.get("connection_name", connection_name),
            client_properties=MappingProxyType(dict(client_properties or {})),
            transport_options=MappingProxyType(topts),
        )
        try:
            cls.check_params(params)
        except ConfigurationError as exc:
            raise ConfigurationError(f"broker {entry.shown!r}: {exc}") from None
        targets.append(Target(url=url, transport_cls=cls, params=params))
    return tuple(targets)


def target_identity(target: Target) -> tuple[Any, ...]:
    """A hashable key: equal for the same URL and options, never holding the password."""
    p = target.params
    secret = hashlib.sha256((p.password or "").encode()).hexdigest()[:16]
    ssl_key: Any = (
        id(p.ssl)
        if isinstance(p.ssl, _ssl.SSLContext)
        else tuple(sorted(p.ssl.items()))
        if isinstance(p.ssl, Mapping)
        else p.ssl
    )
    return (
        target.as_uri(),
        secret,
        target.transport_cls.name,
        ssl_key,
        p.connect_timeout,
        p.heartbeat,
        p.login_method,
        p.connection_name,
        tuple(sorted((k, repr(v)) for k, v in p.transport_options.items())),
        tuple(sorted((k, repr(v)) for k, v in p.client_properties.items())),
    )


CONNECTION_KEYWORDS = [
    "hostname",
    "userid",
    "password",
    "virtual_host",
    "port",
    "ssl",
    "transport",
    "connect_timeout",
    "transport_options",
    "login_method",
    "heartbeat",
    "failover_strategy",
    "alternates",
    "on_open",
    "on_open_error",
    "on_close",
    "on_connect",
    "on_blocked",
    "on_unblocked",
    "blocked_connection_timeout",
    "connection_name",
    "client_properties",
    "heartbeat_thread",
    "resolver",
]


def unknown_keywords_message(kwargs: Mapping[str, Any]) -> str:
    """The error text for keyword arguments Connection() does not know."""
    parts = []
    for key in sorted(kwargs):
        close = difflib.get_close_matches(key, CONNECTION_KEYWORDS, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"Connection() got unknown keyword argument(s) {', '.join(parts)}; "
        f"valid keywords: {', '.join(CONNECTION_KEYWORDS)}"
    )
