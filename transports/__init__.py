"""The transport registry: names and URL schemes mapped to transport classes.

Transports are named by ``"package.module:Class"`` strings and imported only
when first resolved; the class is then cached. Third parties add their own
with :func:`register` or through the ``brokerpool.transports`` entry-point
group (the entry point's name is the transport name, its value the target).

asyncio transports (:class:`transports.base_aio.AsyncTransport`) register
beside them under the same names, with :func:`register_async` (or the
``brokerpool.aio_transports`` entry-point group), and :func:`resolve_async`
finds them; URL parsing keeps using the synchronous class's facts.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from typing import TypeVar

from broker.errors import ConfigurationError, TransportNotFound
from transports.base import Transport
from transports.base_aio import AsyncTransport

__all__ = [
    "AsyncTransport",
    "Transport",
    "available",
    "register",
    "register_async",
    "resolve",
    "resolve_async",
]

ENTRY_POINT_GROUP = "brokerpool.transports"
AIO_ENTRY_POINT_GROUP = "brokerpool.aio_transports"

C = TypeVar("C", bound=type)

_BUILTIN: dict[str, str] = {
    "amqp": "transports.amqp.transport:Transport",
    "pyamqp": "transports.amqp.transport:Transport",
    "amqps": "transports.amqp.transport:Transport",
    "memory": "transports.memory.transport:Transport",
    "redis": "transports.redis.transport:Transport",
    "rediss": "transports.redis.transport:Transport",
    "sentinel": "transports.redis.sentinel:Transport",
}

_BUILTIN_AIO: dict[str, str] = {
    "amqp": "transports.amqp.aio.transport:AsyncTransport",
    "pyamqp": "transports.amqp.aio.transport:AsyncTransport",
    "amqps": "transports.amqp.aio.transport:AsyncTransport",
    "memory": "transports.memory.aio:AsyncTransport",
    "redis": "transports.redis.aio.transport:AsyncTransport",
    "rediss": "transports.redis.aio.transport:AsyncTransport",
    "sentinel": "transports.redis.aio.sentinel:AsyncTransport",
}

_lock = threading.Lock()
_targets: dict[str, str] = dict(_BUILTIN)
_cache: dict[str, type[Transport]] = {}
_entry_points_loaded = False
_aio_targets: dict[str, str] = dict(_BUILTIN_AIO)
_aio_cache: dict[str, type[AsyncTransport]] = {}
_aio_entry_points_loaded = False


def register(name: str, target: str | type[Transport]) -> None:
    """Register a transport under ``name`` (also usable as a URL scheme).

    Args:
        name: the transport name, e.g. ``"mybus"`` for ``mybus://`` URLs.
        target: ``"package.module:Class"`` (imported lazily) or the class itself.

    Raises:
        ConfigurationError: ``name`` is empty or ``target`` is not of that form.
    """
    _store(_targets, _cache, name, target)


def available() -> list[str]:
    """Every registered transport name, sorted."""
    _load_entry_points()
    with _lock:
        return sorted(_targets)


def resolve(name: str) -> type[Transport]:
    """Return the transport class registered as ``name`` (a name or URL scheme).

    Raises:
        TransportNotFound: nothing is registered under ``name``; the message
            suggests the closest registered names.
    """
    key = _normalise(name)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    _load_entry_points()
    with _lock:
        target = _targets.get(key)
        known = sorted(_targets)
    if target is None:
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise TransportNotFound(
            f"unknown transport {name!r}{hint} (registered: {', '.join(known)})"
        )
    cls = _import_object(key, target)
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise _not_a(key, target, "transports.base.Transport")
    with _lock:
        _cache[key] = cls
    return cls


def register_async(name: str, target: str | type[AsyncTransport]) -> None:
    """Register the asyncio transport for ``name`` (beside its synchronous transport).

    Args:
        name: the transport name or URL scheme, as given to :func:`register`.
        target: ``"package.module:Class"`` (imported lazily) or the class itself.

    Raises:
        ConfigurationError: ``name`` is empty or ``target`` is not of that form.
    """
    _store(_aio_targets, _aio_cache, name, target)


def resolve_async(name: str) -> type[AsyncTransport]:
    """Return the asyncio transport class registered as ``name``.

    Raises:
        TransportNotFound: no asyncio transport is registered under ``name``
            (the message lists those that are).
    """
    global _aio_entry_points_loaded
    key = _normalise(name)
    with _lock:
        cached = _aio_cache.get(key)
    if cached is not None:
        return cached
    if not _aio_entry_points_loaded:
        found = {ep.name: ep.value for ep in entry_points(group=AIO_ENTRY_POINT_GROUP)}
        with _lock:
            for ep_name, value in found.items():
                _aio_targets.setdefault(ep_name.lower(), value)
            _aio_entry_points_loaded = True
    with _lock:
        target = _aio_targets.get(key)
        known = sorted(_aio_targets)
    if target is None:
        raise TransportNotFound(
            f"transport {name!r} has no asyncio implementation "
            f"(asyncio transports: {', '.join(known)})"
        )
    cls = _import_object(key, target)
    if not (isinstance(cls, type) and issubclass(cls, AsyncTransport)):
        raise _not_a(key, target, "transports.base_aio.AsyncTransport")
    with _lock:
        _aio_cache[key] = cls
    return cls


def _store(targets: dict[str, str], cache: dict[str, C], name: str, target: str | C) -> None:
    key = _normalise(name)
    if isinstance(target, str):
        if ":" not in target or target.startswith(":") or target.endswith(":"):
            raise ConfigurationError(
                f"transport target {target!r} for {name!r} must look like 'package.module:Class'"
            )
        with _lock:
            targets[key] = target
            cache.pop(key, None)
    else:
        with _lock:
            targets[key] = f"{target.__module__}:{target.__qualname__}"
            cache[key] = target


def _normalise(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"transport name must be a non-empty string, got {name!r}")
    return name.strip().lower()


def _import_object(name: str, target: str) -> object:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TransportNotFound(
            f"transport {name!r} is registered as {target!r}, which cannot be imported: {exc}"
        ) from exc
    return obj


def _not_a(name: str, target: str, base: str) -> TransportNotFound:
    return TransportNotFound(f"transport {name!r} target {target!r} is not a {base} subclass")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    with _lock:
        for ep_name, value in found.items():
            # Explicit register() calls win over entry points.
            _targets.setdefault(ep_name.lower(), value)
        _entry_points_loaded = True
