"""Fixtures shared by every test layer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import pools
import transports.memory.transport
from tests.support.services import (
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    RABBITMQ_URL,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_keys,
    require_service,
)


@pytest.fixture
def rabbitmq_url() -> str:
    """URL of the machine's RabbitMQ on 127.0.0.1:5672 (fails under CI when down)."""
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    return RABBITMQ_URL


@pytest.fixture
def redis_url() -> str:
    """URL of db 13 of the machine's Redis on 127.0.0.1:6379 (fails under CI when down)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return REDIS_URL


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test (or concurrent run) uses, e.g. ``"bp-test:1a2b3c4d:"``.

    Every key of db 13 on the machine's Redis that starts with it is deleted
    after the test, and only those: name all of a test's keys with it.
    """
    prefix = f"bp-test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_redis_keys(prefix)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A queue/exchange name no other test (or concurrent run) uses."""
    return f"bp-test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _fresh_memory_broker() -> Iterator[None]:
    """Every test starts with an empty in-process broker and the default pool limit."""
    yield
    transports.memory.transport.reset()
    pools.reset()
    pools.set_limit(pools.DEFAULT_LIMIT)
