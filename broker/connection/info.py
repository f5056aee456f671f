"""Read-only facts about a Connection: state, current host, errors, capabilities.

Split from :mod:`broker.connection.connection` to keep the façade small; mixed into
:class:`broker.Connection`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from broker.url.targets import Target, target_identity
from transports.base import Transport, TransportConnection

if TYPE_CHECKING:
    from broker.connection.recovery import Topology

__all__ = ["ConnectionInfo"]


class ConnectionInfo:
    """State and description properties of :class:`broker.Connection`."""

    _targets: tuple[Target, ...]
    _current: Target
    _conn: TransportConnection | None
    _closing: bool
    _transport_options: Mapping[str, Any]
    _init_args: dict[str, Any]
    _topology: Topology | None
    _transport_for: Callable[[Target], Transport]

    @property
    def alternate_count(self) -> int:
        """How many brokers this connection can fail over between."""
        return len(self._targets)

    def describe_alternates(self) -> str:
        """Every alternate's URL, passwords masked, separated by ``;``."""
        return ";".join(t.as_uri() for t in self._targets)

    def get_heartbeat_interval(self) -> float:
        """The negotiated heartbeat interval (the requested one before connecting)."""
        if self._conn is not None:
            return self._conn.heartbeat
        return self._current.params.heartbeat

    @property
    def heartbeat(self) -> float:
        """Alias of :meth:`get_heartbeat_interval`."""
        return self.get_heartbeat_interval()

    @property
    def connected(self) -> bool:
        """Whether a live transport connection exists."""
        return self._conn is not None and self._conn.is_open

    @property
    def is_open(self) -> bool:
        """Open and usable."""
        return self.connected and not self._closing

    @property
    def is_closing(self) -> bool:
        """Inside :meth:`close`."""
        return self._closing

    @property
    def is_closed(self) -> bool:
        """Not open and not closing (also before the first connect)."""
        return not self.connected and not self._closing

    @property
    def host(self) -> str:
        """``hostname:port`` of the current alternate."""
        return self._current.host

    @property
    def hostname(self) -> str:
        """Host name of the current alternate."""
        return self._current.params.hostname

    @property
    def transport_options(self) -> Mapping[str, Any]:
        """A read-only copy of the transport options."""
        return self._transport_options

    @property
    def transport(self) -> Transport:
        """The transport of the current alternate."""
        return self._transport_for(self._current)

    @property
    def transport_connection(self) -> TransportConnection | None:
        """The live transport-level connection, if any."""
        return self._conn

    @property
    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning the connection failed."""
        return self._current.transport_cls.connection_errors

    @property
    def channel_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning a channel failed."""
        return self._current.transport_cls.channel_errors

    @property
    def recoverable_connection_errors(self) -> tuple[type[BaseException], ...]:
        """Connection errors that a reconnect can fix."""
        return self._current.transport_cls.recoverable_connection_errors

    @property
    def recoverable_channel_errors(self) -> tuple[type[BaseException], ...]:
        """Channel errors that a new channel can fix."""
        return self._current.transport_cls.recoverable_channel_errors

    @property
    def supports_heartbeats(self) -> bool:
        """Whether the current transport has heartbeats."""
        return self._current.transport_cls.capabilities.heartbeats

    @property
    def server_properties(self) -> Mapping[str, Any]:
        """What the broker announced (empty before connecting)."""
        return self._conn.server_properties if self._conn is not None else {}

    def _capability(self, name: str) -> bool:
        caps = self.server_properties.get("capabilities") or {}
        return bool(caps.get(name, False))

    @property
    def publisher_confirms(self) -> bool:
        """The broker supports publisher confirms."""
        return self._capability("publisher_confirms")

    @property
    def basic_nack(self) -> bool:
        """The broker supports ``basic.nack``."""
        return self._capability("basic.nack")

    @property
    def consumer_cancel_notify(self) -> bool:
        """The broker notifies consumers it cancels."""
        return self._capability("consumer_cancel_notify")

    @property
    def exchange_exchange_bindings(self) -> bool:
        """The broker supports exchange-to-exchange bindings."""
        return self._capability("exchange_exchange_bindings")

    @property
    def topology(self) -> Topology:
        """The record of declared entities and consumers replayed after reconnects."""
        if self._topology is None:
            from broker.connection.recovery import Topology

            self._topology = Topology()
        return self._topology

    @property
    def identity(self) -> tuple[Any, ...]:
        """Hashable key: equal for equal URLs and options; holds no password."""
        return tuple(target_identity(t) for t in self._targets)

    def as_uri(self, include_password: bool = False, mask: str = "**") -> str:
        """The current alternate's URL with defaults filled in (password masked)."""
        return self._current.as_uri(include_password=include_password, mask=mask)

    def info(self) -> dict[str, Any]:
        """Connection facts for display; the password is masked."""
        p = self._current.params
        return {
            "hostname": p.hostname, "port": p.port, "userid": p.userid,
            "password": "**" if p.password else None, "virtual_host": p.virtual_host,
            "ssl": bool(p.ssl), "transport": self._current.transport_cls.name,
            "connect_timeout": p.connect_timeout, "heartbeat": p.heartbeat,
            "login_method": p.login_method, "uri": self.as_uri(),
            "alternates": [t.as_uri() for t in self._targets],
            "failover_strategy": self._init_args["failover_strategy"],
            "transport_options": dict(self._transport_options), "connected": self.connected,
        }  # fmt: skip

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closing" if self._closing else "closed"
        extra = f" alternates={len(self._targets)}" if len(self._targets) > 1 else ""
        return f"<Connection {self.as_uri()} {state}{extra} at {id(self):#x}>"
