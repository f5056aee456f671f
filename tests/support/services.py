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
    reason = (
        f"{name} is not reachable on {host}:{port}; start it "
        f"(for RabbitMQ: `make rabbitmq` or `rabbitmq-server -detached`)"
    )
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
