"""gevent workers on one process: 200 green threads publish while one consumes slowly (issue 14).

The model of Celery's ``-P gevent`` workers and of nucleon.amqp: after
``gevent.monkey.patch_all()``, 200 green threads publish through
``pools.producers`` while another consumes, with ``heartbeat=2``, and the
consumer's callback works for 10 s -- sleeping, or burning CPU and yielding
every 0.5 s. The connections must survive (heartbeats keep flowing while the
callback works) and nothing may be lost. Monkey patching cannot happen inside
pytest's process, so each scenario runs in a child interpreter
(``tests/gevent/scenarios.py``).
"""

from __future__ import annotations

import pytest

from tests.gevent.runner import run_scenario

pytestmark = pytest.mark.broker
pytest.importorskip("gevent", reason="gevent is in the test extra: pip install -e '.[test]'")


@pytest.mark.parametrize("mode", ["sleep", "cpu"])
def test_green_publishers_and_a_slow_consumer_keep_their_connections(
    rabbitmq_url: str, mode: str
) -> None:
    result = run_scenario("gevent", mode, rabbitmq_url)
    assert result["errors"] == []
    assert result["lost_links"] == []  # neither connection was dropped
    assert result["received"] == result["published"] == 4000
    assert result["slow_callback_s"] >= 10
    # heartbeat=2: one every second from the heartbeat green thread, while the
    # callback holds the consumer for 10 s (a few may fall between reads).
    assert result["heartbeats_during_slow_callback"] >= 4
    assert result["consumer_connected"]
