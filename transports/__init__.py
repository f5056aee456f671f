"""The transport registry: names and URL schemes mapped to transport classes.

Transports are named by ``"package.module:Class"`` strings and imported only
when first resolved; the class is then cached. Third parties add their own
with :func:`register` or through the ``brokerpool.transports`` entry-point
group (the entry point's name is the transport name, its value the target).
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points

from broker.errors import ConfigurationError, TransportNotFound
from transports.base import Transport

__all__ = ["Transport", "available", "register", "resolve"]

ENTRY_POINT_GROUP = "brokerpool.transports"

_BUILTIN: dict[str, str] = {
    "amqp": "transports.amqp.transport:Transport",
    "pyamqp": "transports.amqp.transport:Transport",
    "amqps": "transports.amqp.transport:Transport",
    "memory": "transports.memory.transport:Transport",
    "redis": "transports.redis.transport:Transport",
    "rediss": "transports.redis.transport:Transport",
    "sentinel": "transports.redis.sentinel:Transport",
}

_lock = threading.Lock()
_targets: dict[str, str] = dict(_BUILTIN)
_cache: dict[str, type[Transport]] = {}
_entry_points_loaded = False


def register(name: str, target: str | type[Transport]) -> None:
    """Register a transport under ``name`` (also usable as a URL scheme).

    Args:
        name: the transport name, e.g. ``"mybus"`` for ``mybus://`` URLs.
        target: ``"package.module:Class"`` (imported lazily) or the class itself.

    Raises:
        ConfigurationError: ``name`` is empty or ``target`` is not of that form.
    """
    key = _normalise(name)
    if isinstance(target, str):
        if ":" not in target or target.startswith(":") or target.endswith(":"):
            raise ConfigurationError(
                f"transport target {target!r} for {name!r} must look like 'package.module:Class'"
            )
        with _lock:
            _targets[key] = target
            _cache.pop(key, None)
    else:
        with _lock:
            _targets[key] = f"{target.__module__}:{target.__qualname__}"
            _cache[key] = target


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
    cls = _import(key, target)
    with _lock:
        _cache[key] = cls
    return cls


def _normalise(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"transport name must be a non-empty string, got {name!r}")
    return name.strip().lower()


def _import(name: str, target: str) -> type[Transport]:
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
    if not (isinstance(obj, type) and issubclass(obj, Transport)):
        raise TransportNotFound(
            f"transport {name!r} target {target!r} is not a transports.base.Transport subclass"
        )
    return obj


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
