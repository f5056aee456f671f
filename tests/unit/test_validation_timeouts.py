"""Every public timeout refuses nan, strings and the like at once, with a ConfigurationError.

A ``nan`` makes every deadline comparison false, so before these checks
``drain_events(timeout=nan)`` and ``SimpleQueue.get(timeout=nan)`` waited
forever; ``timeout='1'`` failed late with a bare ``TypeError``. Each check
runs before anything is read or sent. The tests run on memory://; the checks
are the façade's, the same on every transport.
"""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable
from typing import Any

import pytest

from broker import Connection, ConsumerLoop, RetryPolicy
from broker.cli.main import main
from broker.errors import ConfigurationError
from broker.timeouts import check_seconds, check_timeout

# Each would hang, or fail with a TypeError deep inside, if it were not refused at once.
BAD = [math.nan, "1", b"1", True, -1, -0.5, [1]]


# -- the shared validators ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0, 0.0), (2, 2.0), (0.25, 0.25), (math.inf, math.inf),
     (fractions.Fraction(1, 4), 0.25)],
)  # fmt: skip
def test_check_timeout_accepts_none_and_numbers(value: object, expected: float | None) -> None:
    result = check_timeout(value)
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize("value", BAD)
def test_check_timeout_names_the_parameter_the_value_and_what_is_allowed(value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_timeout(value, "drain_events(timeout)")
    message = str(info.value)
    assert message.startswith("drain_events(timeout) must be None (no limit) or a number of ")
    assert f"got {value!r}" in message


def test_a_value_that_is_not_a_number_says_its_type() -> None:
    with pytest.raises(ConfigurationError, match=r"got '1' \(a str\)$"):
        check_timeout("1")
    with pytest.raises(ConfigurationError, match=r"got True \(a bool\)$"):
        check_timeout(True)


@pytest.mark.parametrize(
    ("value", "options", "message"),
    [
        (None, {}, "x must be a number of seconds >= 0, got None"),
        (math.nan, {}, "x must be a number of seconds >= 0, got nan"),
        (0, {"positive": True}, "x must be a number of seconds > 0, got 0"),
        (math.inf, {"finite": True}, "x must be a finite number of seconds >= 0, got inf"),
        ("5", {"positive": True, "finite": True}, "a finite number of seconds > 0, got '5'"),
    ],
)
def test_check_seconds_refuses(value: object, options: dict[str, bool], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_seconds(value, "x", **options)
    assert message in str(info.value)


def test_check_seconds_accepts() -> None:
    assert check_seconds(0, "x") == 0.0
    assert check_seconds(math.inf, "x") == math.inf
    assert check_seconds(1, "x", positive=True, finite=True) == 1.0


# -- waits on a connection --------------------------------------------------------------


@pytest.mark.timeout(10)  # the failure these guard against is a wait forever
@pytest.mark.parametrize("value", BAD)
def test_drain_events_refuses_a_bad_timeout_at_once(value: Any) -> None:
    with Connection("memory://") as conn:
        with pytest.raises(ConfigurationError, match=r"^timeout must be None \(no limit\)"):
            conn.drain_events(timeout=value)
        with pytest.raises(TimeoutError):  # and the connection still waits as asked
            conn.drain_events(timeout=0.01)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", BAD)
def test_simple_queue_get_refuses_a_bad_timeout_at_once(value: Any, unique_name: str) -> None:
    with Connection("memory://") as conn, conn.SimpleQueue(unique_name) as queue:
        queue.put(b"waiting")
        with pytest.raises(ConfigurationError, match="timeout must be"):
            queue.get(timeout=value)  # refused even with a message ready
        assert queue.get(timeout=1).body == b"waiting"


def test_an_infinite_timeout_means_no_limit(unique_name: str) -> None:
    with Connection("memory://") as conn, conn.SimpleQueue(unique_name) as queue:
        queue.put(b"x")
        assert queue.get(timeout=math.inf).body == b"x"


# -- connecting and retrying ---------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, "1", True, -1])
def test_retry_timeouts_are_refused(value: Any) -> None:
    conn = Connection("amqp://127.0.0.1:1//")
    with pytest.raises(ConfigurationError, match="timeout must be"):
        conn.ensure_connection(timeout=value)
    with pytest.raises(ConfigurationError, match="timeout must be"):
        conn.ensure(conn, lambda: None, timeout=value)
    with pytest.raises(ConfigurationError, match="timeout must be"):
        conn.autoretry(lambda channel: None, timeout=value)
    with pytest.raises(ConfigurationError, match="timeout must be"):
        RetryPolicy(timeout=value)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("connect_timeout", math.nan, "connect_timeout must be a finite number of seconds > 0"),
        ("connect_timeout", "5", "got '5' (a str)"),
        ("connect_timeout", math.inf, "connect_timeout must be a finite number"),
        ("connect_timeout", 0, "connect_timeout must be a finite number of seconds > 0, got 0"),
        ("heartbeat", math.nan, "heartbeat must be a finite number of seconds >= 0, got nan"),
        ("heartbeat", math.inf, "heartbeat must be a finite number of seconds >= 0, got inf"),
        ("blocked_connection_timeout", math.nan, "blocked_connection_timeout must be a number"),
        ("blocked_connection_timeout", "1", "blocked_connection_timeout must be a number"),
    ],
)
def test_connection_timeouts_are_refused_when_it_is_made(
    keyword: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Connection("memory://", **{keyword: value})
    assert message in str(info.value)


def test_connect_timeout_none_still_means_no_limit() -> None:
    assert Connection("memory://", connect_timeout=None).info()["connect_timeout"] is None


# -- publishing with confirms ---------------------------------------------------------------


@pytest.mark.parametrize("value", BAD)
def test_confirm_timeouts_are_refused(value: Any, unique_name: str) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue=unique_name)
        with pytest.raises(ConfigurationError, match="confirm_timeout must be"):
            conn.Producer(confirm_publish=True, confirm_timeout=value)
        producer = conn.Producer(confirm_publish=True, routing_key=unique_name)
        with pytest.raises(ConfigurationError, match="confirm_timeout must be"):
            producer.publish(b"x", confirm_timeout=value)
        with pytest.raises(ConfigurationError, match=r"^timeout must be"):
            producer.confirms(timeout=value)
        ok = conn.default_channel.queue_declare(queue=unique_name, passive=True)
        assert ok is not None and ok.message_count == 0  # nothing was sent


def test_a_valid_confirm_timeout_still_publishes(unique_name: str) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue=unique_name)
        producer = conn.Producer(confirm_publish=True, routing_key=unique_name, confirm_timeout=0)
        producer.publish(b"x", confirm_timeout=math.inf)
        with producer.confirms(timeout=5) as batch:
            producer.publish(b"y")
        assert batch.confirmed == 1


# -- the consumer loop -----------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD)
def test_consumer_loop_refuses_a_bad_drain_timeout(value: Any) -> None:
    consumers: Callable[[Any], list[Any]] = lambda channel: []  # noqa: E731
    with pytest.raises(ConfigurationError, match="drain_timeout must be a number of seconds"):
        ConsumerLoop(Connection("memory://"), consumers, drain_timeout=value)


# -- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "abc", "-1", "0"])
def test_cli_timeout_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert main(["check", "--timeout", value, "memory://"]) == 2
    err = capsys.readouterr().err
    assert "argument --timeout: expected a number of seconds" in err
    assert repr(value) in err


def test_cli_heartbeat_nan_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--heartbeat", "nan", "memory://"]) == 2
    err = capsys.readouterr().err
    assert "argument --heartbeat: expected a number of seconds" in err and "'nan'" in err
