"""Failover after kill -9 under gevent (issue 14), in a child interpreter.

Twenty green threads publish with confirms and ``retry=True`` through
``pools.producers`` to node A, with B as the alternate; the node A is killed
with SIGKILL while they run. Every publish must end confirmed (on B after
the kill), none with an error. See ``tests/gevent/scenarios.py``.
"""

from __future__ import annotations

import pytest

from tests.gevent.runner import run_scenario
from tests.support.rabbitnode import RabbitNode

pytest.importorskip("gevent", reason="gevent is in the test extra: pip install -e '.[test]'")


def test_green_publishers_fail_over_after_kill_minus_9(
    rabbit_nodes: tuple[RabbitNode, RabbitNode],
) -> None:
    a, b = rabbit_nodes
    result = run_scenario("gevent", "failover", a.url, b.url, on_ready=a.kill)
    assert result["errors"] == []
    assert result["host"] == f"127.0.0.1:{b.port}"
    assert result["confirmed"] > 0
    assert result["held_on_final_host"] > 0  # publishes confirmed by B after the kill
