"""The shared test helpers: skip-or-fail under CI, and the waits of tests/support/wait.py."""

from __future__ import annotations

from typing import Any

import pytest

import transports
from broker import Connection
from tests.support.services import require_module, skip_or_fail
from tests.support.wait import drain_for, drain_until, wait_until
from transports.base import ConnectionParams

# -- skip, or fail under CI -------------------------------------------------------------


def test_skip_or_fail_skips_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="epmd is not on PATH"):
        skip_or_fail("epmd is not on PATH")


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_skip_or_fail_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)

    with pytest.raises(pytest.fail.Exception, match="CI=true and epmd is not on PATH"):
        skip_or_fail("epmd is not on PATH")


def test_require_module_returns_the_module() -> None:
    assert require_module("json").dumps([1]) == "[1]"


def test_require_module_skips_a_missing_one_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = "brokerpool_no_such_module"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{missing} is not importable"):
        require_module(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"CI=true and {missing} is not importable"):
        require_module(missing)


# -- waits ------------------------------------------------------------------------------


class Silent:
    """A connection on which nothing ever arrives; counts the drains."""

    def __init__(self) -> None:
        self.drains = 0

    def drain_events(self, timeout: float | None = None) -> None:
        self.drains += 1
        raise TimeoutError("nothing")


def test_drain_until_reads_until_done_on_a_broker_connection(unique_name: str) -> None:
    got: list[Any] = []
    with Connection("memory://") as conn:
        channel = conn.channel()
        channel.queue_declare(queue=unique_name)
        channel.basic_consume(queue=unique_name, callback=got.append, no_ack=True)
        channel.basic_publish(channel.prepare_message(b"x"), routing_key=unique_name)

        drain_until(conn, lambda: len(got) == 1)

    assert [bytes(m.body) for m in got] == [b"x"]


def test_drain_until_works_on_a_transport_connection(unique_name: str) -> None:
    got: list[Any] = []
    params = ConnectionParams(hostname="localhost", port=0)
    transport_conn = transports.resolve("memory")().connect(params)
    try:
        channel = transport_conn.channel()
        channel.queue_declare(queue=unique_name)
        channel.basic_consume(queue=unique_name, callback=got.append, no_ack=True)
        channel.basic_publish(channel.prepare_message(b"y"), routing_key=unique_name)

        drain_until(transport_conn, lambda: len(got) == 1)
    finally:
        transport_conn.close()

    assert [bytes(m.body) for m in got] == [b"y"]


def test_drain_until_fails_with_its_message_when_nothing_comes() -> None:
    conn = Silent()

    with pytest.raises(AssertionError, match=r"the ack did not arrive within 0\.05 s"):
        drain_until(conn, lambda: False, 0.05, message="the ack did not arrive")
    assert conn.drains >= 1


def test_drain_until_does_not_drain_when_already_done() -> None:
    conn = Silent()

    drain_until(conn, lambda: True, 0.05)

    assert conn.drains == 0


def test_drain_for_returns_after_draining_whatever_came() -> None:
    conn = Silent()

    drain_for(conn, 0.05)

    assert conn.drains >= 1


def test_wait_until_returns_once_true_and_fails_with_its_message() -> None:
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), 10, interval=0)

    with pytest.raises(AssertionError, match=r"the pool never filled within 0\.05 s"):
        wait_until(lambda: False, 0.05, message="the pool never filled")
