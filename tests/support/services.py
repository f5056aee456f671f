"""Reachability of the machine's real services, shared by all test layers.

Tests that need a broker must fail under ``CI=true`` when none is reachable
and skip with a clear reason elsewhere.
"""

from __future__ import annotations

import functools
import os
import socket

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


def require_service(name: str, host: str, port: int) -> None:
    """Fail (under CI) or skip (elsewhere) when the service is not reachable."""
    if port_open(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if name in _START_HINTS:
        reason += f"; start it ({_START_HINTS[name]})"
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


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
