"""What a connection knows about its brokers, shared by both façades.

:class:`broker.Connection` and :class:`broker.aio.Connection` take the same
arguments, parse them the same way and describe themselves the same way;
they differ in how they wait. :class:`ConnectionFacts` is that common part:
the constructor arguments, the alternates (a
:class:`~broker.connection.failover.Failover`), the transport options and
kombu's connect-retry settings among them, and every read-only fact derived
from them or from the live link (state, URL, heartbeat, error classes, the
broker's capabilities, :meth:`~ConnectionFacts.info`). It does no I/O.

A façade inherits it, passes its arguments to ``__init__`` and sets
``_conn`` to its live transport connection (``None`` while there is none)
and ``_node`` to the ``host:port`` that link reached. It may extend
:meth:`ConnectionFacts._targets` (the asyncio side also checks that every
scheme has an asyncio transport).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, Protocol, Self, TypeVar

from broker.connection.failover import Failover, resolve_strategy
from broker.errors import ConfigurationError
from broker.retry.policy import RetryPolicy
from broker.url.targets import Target, build_targets, target_identity
from transports.base import Transport

__all__ = [
    "CONNECT_RETRY_OPTIONS",
    "ConnectionFacts",
    "LinkFacts",
    "Resolver",
    "split_transport_options",
]

#: ``resolver()`` returns the current broker URLs: ``'url1;url2'`` or a list of URLs.
Resolver = Callable[[], str | Sequence[str]]

#: kombu's connect-retry settings, read from ``transport_options`` by the
#: connection itself (never passed to a transport): the loose keywords of
#: ``ensure_connection`` for connects that give none of their own.
CONNECT_RETRY_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "max_retries": "max_retries",
        "interval_start": "interval_start",
        "interval_step": "interval_step",
        "interval_max": "interval_max",
        "connect_retries_timeout": "timeout",
    }
)

# Constructor keywords that describe a broker (passed on to build_targets).
_TARGET_KEYWORDS = (
    "transport", "userid", "password", "virtual_host", "port", "ssl", "connect_timeout",
    "heartbeat", "login_method", "connection_name", "client_properties",
)  # fmt: skip


def split_transport_options(
    options: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """A read-only copy of ``options``, and the connect-retry keywords taken from them.

    Raises:
        ConfigurationError: ``options`` is not a mapping, or a retry setting is
            bad (refused now, not on some later connect).
    """
    if options is not None and not isinstance(options, Mapping):
        raise ConfigurationError(f"transport_options must be a mapping, got {options!r}")
    copied = MappingProxyType(dict(options or {}))
    retry = {
        keyword: copied[key] for key, keyword in CONNECT_RETRY_OPTIONS.items() if key in copied
    }
    RetryPolicy.from_intervals(**retry)
    return copied, MappingProxyType(retry)


class LinkFacts(Protocol):
    """What the facts read of a live transport connection (sync or asyncio)."""

    @property
    def is_open(self) -> bool: ...

    @property
    def heartbeat(self) -> float: ...

    @property
    def server_properties(self) -> Mapping[str, Any]: ...


L = TypeVar("L", bound=LinkFacts)


class ConnectionFacts(Generic[L]):
    """The arguments, alternates and read-only facts of a connection (see the module docstring).

    Args:
        init_args: every constructor argument by name (kept for :meth:`clone`,
            pickling and :meth:`info`).

    Raises:
        ConfigurationError: a bad ``resolver``, ``transport_options`` or
            ``failover_strategy``, or a URL no transport takes.
    """

    def __init__(self, init_args: dict[str, Any]) -> None:
        resolver = init_args["resolver"]
        if resolver is not None and not callable(resolver):
            raise ConfigurationError(
                f"resolver must be a callable returning broker URLs, got {resolver!r}"
            )
        self._init_args = init_args
        self._transport_options, self._connect_retry = split_transport_options(
            init_args["transport_options"]
        )
        self._strategy = resolve_strategy(init_args["failover_strategy"])
        self._failover = self._make_failover()
        self._conn: L | None = None
        self._node: str | None = None  # host:port the live link reached
        self._closing = False

    def _make_failover(self) -> Failover:
        args = self._init_args
        targets = self._targets(args["hostname"], args["alternates"])
        resolver: Resolver | None = args["resolver"]
        # Keyed by what was given, not by what the resolver answers later, so that
        # a pool group finds the same pools for this connection all its life.
        identity = tuple(target_identity(t) for t in targets)
        self._identity = identity if resolver is None else (*identity, ("resolver", resolver))
        if resolver is None:
            return Failover(targets, self._strategy)

        def resolve() -> tuple[Target, ...]:
            urls = resolver()
            return self._targets(urls, None) if urls else ()

        return Failover(targets, self._strategy, resolve)

    def _targets(
        self, hostname: str | Sequence[str], alternates: Sequence[str] | None
    ) -> tuple[Target, ...]:
        """The brokers ``hostname`` and ``alternates`` name, with this connection's options."""
        args = self._init_args
        # kombu's connect-retry keys are the connection's own, not the transport's.
        options = {
            key: value
            for key, value in self._transport_options.items()
            if key not in CONNECT_RETRY_OPTIONS
        }
        return build_targets(
            hostname,
            alternates=alternates,
            transport_options=options,
            **{k: args[k] for k in _TARGET_KEYWORDS},
        )

    # -- state --------------------------------------------------------------------------

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
        """Inside ``close()``."""
        return self._closing

    @property
    def is_closed(self) -> bool:
        """Not open and not closing (also before the first connect)."""
        return not self.connected and not self._closing

    # -- the current alternate ----------------------------------------------------------
    # kombu's attributes; they describe the current alternate, with the
    # transport's defaults filled in.

    @property
    def host(self) -> str:
        """``hostname:port`` of the current alternate."""
        return self._failover.current.host

    @property
    def hostname(self) -> str:
        """Host name of the current alternate."""
        return self._failover.current.params.hostname

    @property
    def port(self) -> int:
        """Port of the current alternate."""
        return self._failover.current.params.port

    @property
    def userid(self) -> str | None:
        """User name of the current alternate."""
        return self._failover.current.params.userid

    @property
    def password(self) -> str | None:
        """Password of the current alternate (never shown by ``repr``, ``as_uri`` or ``info``)."""
        return self._failover.current.params.password

    @property
    def virtual_host(self) -> str:
        """Virtual host of the current alternate (the database number on Redis)."""
        return self._failover.current.params.virtual_host

    @property
    def ssl(self) -> Any:
        """TLS setting of the current alternate: ``False``, ``True``, a dict or an SSLContext."""
        return self._failover.current.params.ssl

    @property
    def transport_cls(self) -> type[Transport]:
        """Transport class of the current alternate (its registry name is ``.name``)."""
        return self._failover.current.transport_cls

    def as_uri(self, include_password: bool = False, mask: str = "**") -> str:
        """The current alternate's URL with defaults filled in (password masked)."""
        return self._failover.current.as_uri(include_password=include_password, mask=mask)

    @property
    def identity(self) -> tuple[Any, ...]:
        """Hashable key: equal for equal URLs, options and resolver; holds no password."""
        return self._identity

    @property
    def transport_options(self) -> Mapping[str, Any]:
        """A read-only copy of the transport options.

        Assignable, as in kombu: ``conn.transport_options = {...}`` replaces
        them (a copy is kept; the mapping given is never changed). They are
        checked at once and take effect on the next connect; a live link is
        left as it is. kombu's connect-retry settings (``max_retries``,
        ``interval_start``, ``interval_step``, ``interval_max``,
        ``connect_retries_timeout``) are read by the connection itself: they
        bound connects that give no budget of their own (``connect()``,
        implicit connects such as ``default_channel``) on every transport.

        Raises:
            ConfigurationError: (on assignment) not a mapping, an option the
                transport does not know, or a bad value.
        """
        return self._transport_options

    @transport_options.setter
    def transport_options(self, options: Mapping[str, Any] | None) -> None:
        current = self._failover.current.url.as_uri(include_password=True)
        previous = self._transport_options, self._connect_retry
        self._transport_options, self._connect_retry = split_transport_options(options)
        try:
            failover = self._make_failover()
        except BaseException:
            self._transport_options, self._connect_retry = previous
            raise
        # Stay on the alternate in use: a live link keeps describing itself right.
        for _ in range(2 * len(failover)):
            if failover.current.url.as_uri(include_password=True) == current:
                break
            failover.advance()
        self._failover = failover
        self._init_args = dict(self._init_args, transport_options=dict(self._transport_options))

    # -- what the transport and the broker say ---------------------------------------------

    def get_heartbeat_interval(self) -> float:
        """The negotiated heartbeat interval (the requested one before connecting)."""
        if self._conn is not None:
            return self._conn.heartbeat
        return self._failover.current.params.heartbeat

    @property
    def heartbeat(self) -> float:
        """Alias of :meth:`get_heartbeat_interval`."""
        return self.get_heartbeat_interval()

    @property
    def supports_heartbeats(self) -> bool:
        """Whether the current transport has heartbeats."""
        return self._failover.current.transport_cls.capabilities.heartbeats

    @property
    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning the connection failed."""
        return self._failover.current.transport_cls.connection_errors

    @property
    def channel_errors(self) -> tuple[type[BaseException], ...]:
        """Errors meaning a channel failed."""
        return self._failover.current.transport_cls.channel_errors

    @property
    def recoverable_connection_errors(self) -> tuple[type[BaseException], ...]:
        """Connection errors that a reconnect can fix."""
        return self._failover.current.transport_cls.recoverable_connection_errors

    @property
    def recoverable_channel_errors(self) -> tuple[type[BaseException], ...]:
        """Channel errors that a new channel can fix."""
        return self._failover.current.transport_cls.recoverable_channel_errors

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

    def info(self) -> dict[str, Any]:
        """Connection facts for display; the password is masked.

        ``node`` is the ``host:port`` of the broker this connection reached
        (for ``sentinel://``, the master the Sentinel named), ``None`` while
        not connected; the other entries describe the current alternate.
        """
        p = self._failover.current.params
        return {
            "hostname": p.hostname, "port": p.port, "userid": p.userid,
            "password": "**" if p.password else None, "virtual_host": p.virtual_host,
            "ssl": bool(p.ssl), "transport": self._failover.current.transport_cls.name,
            "connect_timeout": p.connect_timeout, "heartbeat": p.heartbeat,
            "login_method": p.login_method, "uri": self.as_uri(),
            "alternates": [t.as_uri() for t in self._failover.targets],
            "failover_strategy": self._init_args["failover_strategy"],
            "transport_options": dict(self._transport_options), "connected": self.connected,
            "node": self._node if self.connected else None,
        }  # fmt: skip

    # -- alternates ---------------------------------------------------------------------

    @property
    def alternate_count(self) -> int:
        """How many brokers this connection can fail over between."""
        return len(self._failover)

    def describe_alternates(self) -> str:
        """Every alternate's URL, passwords masked, separated by ``;``."""
        return self._failover.describe()

    def maybe_switch_next(self) -> None:
        """Move to the next alternate (per the failover strategy), if there is one."""
        self._failover.advance()

    def clone(self, **kwargs: Any) -> Self:
        """A new, unconnected connection with the same arguments, some overridden."""
        return type(self)(**{**self._init_args, **kwargs})
