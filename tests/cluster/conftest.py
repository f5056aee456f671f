"""Fixtures for the cluster tier: a three-node RabbitMQ cluster and Redis Sentinel on loopback.

Every test collected under ``tests/cluster`` is marked ``cluster``: run the
tier alone with ``pytest -m cluster``, leave it out with ``-m "not cluster"``.

Fixtures:

``rabbit_cluster`` -> :class:`~tests.support.rabbitcluster.RabbitCluster`
    Three clustered RabbitMQ nodes shared by the whole session: forming the
    cluster costs 20-30 s on 2 cores, more than all of its tests together,
    so it happens once per session rather than per module. Each test gets
    it with every member running: members an earlier test killed or stopped
    are started again first (they rejoin, about 7 s each). A test may even
    close it (the harness's cleanup test does): the next test that asks
    gets a new cluster.
``redis_sentinel`` -> :class:`~tests.support.sentinel.SentinelDeployment`
    A master, its replica and three Sentinels of this test's own (ready in
    about 2 s, cheap enough to give every test an unfailed-over one).
``new_redis_sentinel`` -> ``SentinelDeployment``
    One of this test's own, not started yet (``with`` starts it); closed
    after the test.

Both skip with the reason when the servers are not installed, and fail
instead under ``CI=true``. Everything they start is stopped and every
directory removed at the end, also when a test fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rabbitcluster import RabbitCluster
from tests.support.rabbitnode import install_problem as rabbit_install_problem
from tests.support.redisnode import install_problem as redis_install_problem
from tests.support.sentinel import SentinelDeployment
from tests.support.services import skip_or_fail

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``cluster``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)


def require_installed(problem: str | None, what: str) -> None:
    """Skip (or fail under ``CI=true``) when ``what`` cannot start here because of ``problem``."""
    if problem is not None:
        skip_or_fail(f"{what} cannot start: {problem}")


def require_rabbit_cluster() -> None:
    """Skip (or fail under CI) unless RabbitMQ nodes can be started here."""
    require_installed(rabbit_install_problem(), "a RabbitMQ cluster")


def require_redis_sentinel() -> None:
    """Skip (or fail under CI) unless ``redis-server`` (which also runs Sentinel) is here."""
    require_installed(redis_install_problem(), "Redis Sentinel")


class _SessionCluster:
    """The session's cluster, formed on first demand and again after a test closed it."""

    def __init__(self) -> None:
        self._cluster: RabbitCluster | None = None

    def running(self) -> RabbitCluster:
        """The cluster, formed and with every member running."""
        cluster = self._cluster
        if cluster is None or cluster.closed:
            began = time.monotonic()
            cluster = self._cluster = RabbitCluster()
            cluster.form()
            print(f"\n[cluster] {cluster!r} formed in {time.monotonic() - began:.1f} s")
        else:
            cluster.heal()
        return cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[_SessionCluster]:
    require_rabbit_cluster()
    session = _SessionCluster()
    yield session
    session.close()


@pytest.fixture
def rabbit_cluster(_session_cluster: _SessionCluster) -> RabbitCluster:
    """The session's cluster with every member running (see the module docstring)."""
    return _session_cluster.running()


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A running master, replica and three Sentinels of this test's own."""
    require_redis_sentinel()
    with SentinelDeployment() as deployment:
        yield deployment


@pytest.fixture
def new_redis_sentinel() -> Iterator[SentinelDeployment]:
    """A deployment of this test's own, not started yet; closed after the test."""
    require_redis_sentinel()
    deployment = SentinelDeployment()
    yield deployment
    deployment.close()
