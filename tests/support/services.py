"""Reachability of the machine's real services, shared by all test layers.

A test that cannot run here -- no broker reachable, a tool or library not
installed, no free port -- goes through :func:`skip_or_fail`: it skips with
a clear reason on a developer's machine and fails under ``CI=true``, so that
CI never passes by skipping.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
from types import ModuleType
from typing import NoReturn

import pytest

RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
RABBITMQ_URL = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: The database tests use on the machine's Redis; nothing else should write there.
REDIS_DB = 13
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"

#: How to start each service, quoted in the skip (or CI failure) reason.
_START_HINTS = {
    "RabbitMQ": "`make rabbitmq` or `rabbitmq-server -detached`",
    "Redis": "`make redis`",
}


def in_ci() -> bool:
    """True when running under CI (``CI=true``)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@functools.cache
def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection (cached per session)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip the test with ``reason``; under ``CI=true`` fail it instead.

    Args:
        reason: what is missing and how to get it, e.g. ``"Redis is not
            reachable on 127.0.0.1:6379; start it (`make redis`)"``.
        allow_module_level: set when called while a module is collected
            (a failure there is a collection error, which fails the run too).
    """
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)


def require_service(name: str, host: str, port: int) -> None:
    """Fail (under CI) or skip (elsewhere) when the service is not reachable."""
    if port_open(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if name in _START_HINTS:
        reason += f"; start it ({_START_HINTS[name]})"
    skip_or_fail(reason)


def require_module(name: str) -> ModuleType:
    """Import ``name`` at module level, or skip the module (fail it under ``CI=true``).

    The ``pytest.importorskip`` for libraries the ``test`` extra installs:
    missing in CI means a broken environment, not a test to leave out.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(
            f"{name} is not importable ({exc}); install the test extra (`make install`)",
            allow_module_level=True,
        )


_REDIS_GLOB_CHARS = frozenset("*?[]^\\")


def redis_glob_escape(literal: str) -> str:
    """``literal`` with Redis glob characters escaped, for ``SCAN ... MATCH``."""
    return "".join(f"\\{c}" if c in _REDIS_GLOB_CHARS else c for c in literal)


def delete_redis_keys(prefix: str, db: int = REDIS_DB, batch: int = 500) -> int:
    """Delete every key of ``db`` on the machine's Redis that starts with ``prefix``.

    Walks the keyspace with ``SCAN MATCH prefix*`` and deletes in batches of
    ``batch`` keys, so that it never blocks Redis the way ``KEYS`` would.
    Returns the number of keys deleted. redis-py is imported here, lazily.
    """
    if not prefix:
        raise ValueError("refusing to delete every key: the prefix is empty")
    import redis  # lazily: only tests that use Redis need redis-py

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=10)
    deleted = 0
    try:
        pending: list[bytes] = []
        for key in client.scan_iter(match=f"{redis_glob_escape(prefix)}*", count=batch):
            pending.append(key)
            if len(pending) >= batch:
                deleted += int(client.delete(*pending))
                pending.clear()
        if pending:
            deleted += int(client.delete(*pending))
    finally:
        client.close()
    return deleted
