"""The ``sentinel://`` transport: the Redis transport on whatever master Sentinel names.

URLs name Sentinels, not Redis servers::

    sentinel://[[user]:password@]sentinel-host[:26379][/db]

``Connection("sentinel://s1:26379;sentinel://s2:26379;sentinel://s3:26379",
transport_options={"master_name": "mymaster"})`` (kombu's spelling) makes
each Sentinel one alternate. Every connect asks the current alternate's
Sentinel where the master called ``master_name`` is (``SENTINEL MASTER``) and
then connects there exactly as ``redis://`` does: the login and database in
the URL are the master's, and everything of :mod:`transports.redis.transport`
(the broker script, leases, ``min_replicas``) applies. A Sentinel that is
down, or that reports the master down while a failover is under way, fails
the attempt with a recoverable error, so the retry loops move on to the next
Sentinel and, after a round, back off; once the Sentinels have promoted a
replica, the next connect reaches it. A server that is no master (any more)
refuses the transport's first write (``READONLY``), which is recoverable too.

Transport options beside the Redis transport's:

``master_name``
    the name the Sentinels monitor the master by (required).
``sentinel_kwargs``
    how to log in to the Sentinels themselves, which may differ from the
    master: ``{"username": ..., "password": ...}``, and ``socket_timeout``
    (seconds a Sentinel may take to answer, default: the connect timeout).

TLS is not supported on ``sentinel://`` (neither to the Sentinels nor to the
master).

The asyncio transport (:mod:`transports.redis.aio.sentinel`) asks the same
question with ``redis.asyncio`` and shares the rest: :func:`asker_kwargs`,
:func:`sentinel_error`, :func:`master_address` and :func:`master_target`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as missing:  # the registry reports this when resolving 'sentinel'
    raise ImportError(
        f"the sentinel transport needs redis-py: pip install 'brokerpool[redis]' ({missing})"
    ) from missing

from broker.errors import (
    BrokerError,
    ConfigurationError,
    IrrecoverableConnectionError,
    RecoverableConnectionError,
)
from broker.timeouts import check_seconds
from transports import base
from transports._shared.replies import EXCHANGE_TYPES
from transports.redis.connection import RedisConnection
from transports.redis.driver import Link, translate
from transports.redis.options import check, settings
from transports.redis.transport import Transport as RedisTransport

__all__ = [
    "OPTIONS",
    "MasterTarget",
    "SentinelSettings",
    "Transport",
    "ask_master",
    "asker_kwargs",
    "master_address",
    "master_target",
    "sentinel_error",
    "sentinel_settings",
    "sentinel_where",
]

#: Transport options of ``sentinel://`` beside the Redis transport's.
OPTIONS = ("master_name", "sentinel_kwargs")
#: What ``sentinel_kwargs`` may hold.
_LOGIN_KEYS = ("username", "password", "socket_timeout")
#: Master flags a Sentinel reports while it takes the master for down.
_DOWN_FLAGS = frozenset({"s_down", "o_down"})


@dataclass(frozen=True, slots=True)
class SentinelSettings:
    """How to ask the Sentinels: the master's name, the login, how long to wait."""

    master_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    socket_timeout: float | None = None


def sentinel_settings(params: base.ConnectionParams) -> SentinelSettings:
    """Read and check the Sentinel options of ``params`` (no I/O).

    Raises:
        ConfigurationError: ``master_name`` is missing or empty, or
            ``sentinel_kwargs`` is not a mapping of the keys it may hold.
    """
    options = params.transport_options
    name = options.get("master_name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            "sentinel:// needs transport_options={'master_name': ...}, the name the "
            f"Sentinels monitor the master by; got {name!r}"
        )
    login = options.get("sentinel_kwargs") or {}
    if not isinstance(login, Mapping):
        raise ConfigurationError(
            f"transport option 'sentinel_kwargs' must be a mapping of {', '.join(_LOGIN_KEYS)}, "
            f"got {type(login).__name__}"
        )
    unknown = sorted(set(login) - set(_LOGIN_KEYS))
    if unknown:
        raise ConfigurationError(
            f"unknown sentinel_kwargs key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(_LOGIN_KEYS)}"
        )
    for key in ("username", "password"):
        if login.get(key) is not None and not isinstance(login[key], str):
            raise ConfigurationError(f"sentinel_kwargs[{key!r}] must be a string")
    timeout = login.get("socket_timeout")
    return SentinelSettings(
        master_name=name,
        username=login.get("username"),
        password=login.get("password"),
        socket_timeout=None
        if timeout is None
        else check_seconds(
            timeout, "sentinel_kwargs['socket_timeout']", positive=True, finite=True
        ),
    )


class _Asker(Protocol):
    """What :func:`ask_master` uses of a redis-py client (``execute_command`` is not annotated)."""

    def execute_command(self, *args: Any, **options: Any) -> Any: ...

    def close(self) -> None: ...


def ask_master(
    params: base.ConnectionParams, found: SentinelSettings, timeout: float | None
) -> tuple[str, int]:
    """Ask the Sentinel ``params`` names where its master ``found.master_name`` is.

    Args:
        params: the alternate (a Sentinel's host and port).
        found: the Sentinel options.
        timeout: seconds for the whole question (connect and answer).

    Returns:
        the master's ``(host, port)``.

    Raises:
        broker.errors.RecoverableConnectionError: the Sentinel is unreachable or
            takes the master for down (a failover may be under way).
        broker.errors.AuthenticationError: the Sentinel refused ``sentinel_kwargs``.
        broker.errors.IrrecoverableConnectionError: the Sentinel monitors no
            master of that name.
    """
    where = sentinel_where(params)
    asker: _Asker = redis.Redis(**asker_kwargs(params, found, timeout), retry=Retry(NoBackoff(), 0))
    try:
        reply = asker.execute_command("SENTINEL", "MASTER", found.master_name)
    except redis.RedisError as exc:
        raise sentinel_error(exc, where, found) from exc
    finally:
        asker.close()
    return master_address(reply, where, found)


def sentinel_where(params: base.ConnectionParams) -> str:
    """``sentinel host:port`` of the alternate ``params``, for messages."""
    return f"sentinel {_host(params.hostname)}:{params.port}"


def asker_kwargs(
    params: base.ConnectionParams, found: SentinelSettings, timeout: float | None
) -> dict[str, Any]:
    """redis-py client arguments for asking the Sentinel (each client adds its own ``retry=``).

    ``timeout`` bounds the connect; an answer waits at most that long too, or
    ``sentinel_kwargs['socket_timeout']`` when it is shorter.
    """
    answer_timeout = timeout
    if found.socket_timeout is not None:
        answer_timeout = min(found.socket_timeout, timeout or found.socket_timeout)
    return {
        "host": params.hostname,
        "port": params.port,
        "username": found.username,
        "password": found.password,
        "socket_connect_timeout": timeout,
        "socket_timeout": answer_timeout,
        "driver_info": None,
        "protocol": 2,
    }


def sentinel_error(exc: redis.RedisError, where: str, found: SentinelSettings) -> BrokerError:
    """The brokerpool error for a failed ``SENTINEL MASTER`` (raise it ``from exc``)."""
    if isinstance(exc, redis.ResponseError) and "no such master" in str(exc).lower():
        return IrrecoverableConnectionError(
            f"{where} monitors no master named {found.master_name!r} "
            f"(transport option 'master_name')"
        )
    return translate(exc, where)


def master_address(reply: Any, where: str, found: SentinelSettings) -> tuple[str, int]:
    """The master's ``(host, port)`` from a ``SENTINEL MASTER`` reply.

    Raises:
        broker.errors.RecoverableConnectionError: the Sentinel takes the master
            for down (a failover may be under way).
    """
    state = {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    host, port = state["ip"], int(state["port"])
    down = _DOWN_FLAGS & set(state.get("flags", "").split(","))
    if down:
        raise RecoverableConnectionError(
            f"{where} takes master {found.master_name!r} at {_host(host)}:{port} for down "
            f"({', '.join(sorted(down))}); a failover may be under way"
        )
    return host, port


@dataclass(frozen=True, slots=True)
class MasterTarget:
    """Where a ``sentinel://`` connect goes once the Sentinel answered.

    Attributes:
        params: the master's parameters (what the connection reports, so the
            façade's ``info()['node']`` names the master).
        link_params: the same, with what is left of ``connect_timeout``.
        where: how messages name the master.
    """

    params: base.ConnectionParams
    link_params: base.ConnectionParams
    where: str


def master_target(
    params: base.ConnectionParams,
    asking: SentinelSettings,
    db: int,
    master: tuple[str, int],
    started: float,
) -> MasterTarget:
    """The master ``master`` a Sentinel named, to be reached within the connect timeout left.

    Args:
        params: the alternate (the Sentinel's host and port; the login and
            options are the master's).
        asking: the Sentinel options.
        db: the database number.
        master: the master's ``(host, port)``.
        started: when the connect began (:func:`time.monotonic`).

    Raises:
        broker.errors.RecoverableConnectionError: asking took all of ``connect_timeout``.
    """
    host, port = master
    reached = replace(params, hostname=host, port=port)
    link_params = reached
    if params.connect_timeout is not None:
        left = params.connect_timeout - (time.monotonic() - started)
        if left <= 0:
            raise RecoverableConnectionError(
                f"could not connect to master {asking.master_name!r} within "
                f"connect_timeout={params.connect_timeout:g} s (asking the Sentinel took "
                "all of it)"
            )
        link_params = replace(reached, connect_timeout=left)
    where = (
        f"redis master {asking.master_name!r} at {_host(host)}:{port}/{db} "
        f"(named by sentinel {_host(params.hostname)}:{params.port})"
    )
    return MasterTarget(reached, link_params, where)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _host(name: str) -> str:
    return f"[{name}]" if ":" in name else name


class Transport(RedisTransport):
    """The ``sentinel://`` transport: Redis on the master the Sentinels name."""

    name: ClassVar[str] = "sentinel"
    default_port: ClassVar[int | None] = 26379
    default_ssl_port: ClassVar[int | None] = None
    capabilities: ClassVar[base.Capabilities] = base.Capabilities(
        heartbeats=True, publisher_confirms=True, exchange_types=EXCHANGE_TYPES, ssl=False
    )

    @classmethod
    def check_params(cls, params: base.ConnectionParams) -> None:
        """The Redis transport's checks, the Sentinel options, and no TLS (no I/O).

        Raises:
            broker.errors.ConfigurationError: naming the key, the value and what is allowed.
        """
        if params.ssl:
            raise ConfigurationError("sentinel:// does not support TLS; drop ssl")
        check(params, OPTIONS)
        sentinel_settings(params)

    def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> RedisConnection:
        """Ask the Sentinel for the master, then connect to it as ``redis://`` does.

        ``params.connect_timeout`` bounds both together. The connection's
        ``params`` name the master, so the façade's ``info()['node']`` does.

        Raises:
            broker.errors.ConfigurationError: a bad option (before any I/O).
            broker.errors.AuthenticationError: the Sentinel or the master refused the login.
            broker.errors.IrrecoverableConnectionError: no master of that name.
            broker.errors.RecoverableConnectionError: the Sentinel or the master is
                unreachable, the master is down or no master (any more).
        """
        found = settings(params, OPTIONS)
        asking = sentinel_settings(params)
        started = time.monotonic()
        master = ask_master(params, asking, params.connect_timeout)
        target = master_target(params, asking, found.db, master, started)
        return RedisConnection(target.params, found, Link(target.link_params, found, target.where))
