"""RetryPolicy, RetryState and backoff strategies: pure arithmetic, no sleeping."""

from __future__ import annotations

import math

import pytest

from broker.errors import (
    AuthenticationError,
    ConfigurationError,
    IrrecoverableChannelError,
    NotFound,
    OperationalError,
    RecoverableChannelError,
    RecoverableConnectionError,
    TLSVerificationError,
)
from broker.retry.policy import (
    DEFAULT_RETRY_POLICY,
    Constant,
    Exponential,
    FullJitter,
    Linear,
    RetryPolicy,
)


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kw: object) -> RetryPolicy:
    return RetryPolicy(clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Constant(0.5), [0.5, 0.5, 0.5, 0.5]),
        (Linear(2, 2, 30), [2, 4, 6, 8]),
        (Linear(1, 1, 2), [1, 2, 2, 2]),
        (Exponential(0.5, 2, 3), [0.5, 1, 2, 3]),
    ],
)
def test_backoff_sequences(backoff: object, expected: list[float]) -> None:
    assert [backoff.compute(n) for n in range(1, 5)] == expected  # type: ignore[attr-defined]


def test_full_jitter_uses_injected_randomness_and_caps() -> None:
    assert FullJitter(1, 10, random=lambda: 0.5).compute(3) == 2.0
    assert FullJitter(1, 10, random=lambda: 1.0).compute(50) == 10.0
    assert FullJitter(1, 10, random=lambda: 0.0).compute(2) == 0.0


def test_exponential_does_not_overflow_on_huge_attempts() -> None:
    assert Exponential(1, 2, 30).compute(10_000) == 30


def test_backoffs_are_stateless_values() -> None:
    b = Linear(1, 1, 5)
    assert [b.compute(2), b.compute(2)] == [2, 2]
    assert Linear(1, 1, 5) == b
    with pytest.raises(AttributeError):
        b.start = 3  # type: ignore[misc]


def test_max_retries_n_means_n_plus_one_attempts() -> None:
    clock = FakeClock()
    state = policy(clock, max_retries=2, backoff=Constant(1), timeout=None).begin()
    err = RecoverableConnectionError("refused")
    state, d1 = state.next(err)
    state, d2 = state.next(err)
    with pytest.raises(OperationalError) as info:
        state.next(err, what="could not connect to amqp://guest:**@h:5672//")
    assert (d1, d2) == (1, 1)
    assert info.value.__cause__ is err
    message = str(info.value)
    assert "could not connect to amqp://guest:**@h:5672// after 3 attempts" in message
    assert "max_retries=2" in message and "refused" in message


def test_within_a_round_there_is_no_delay_and_the_backoff_does_not_advance() -> None:
    clock = FakeClock()
    state = policy(clock, max_retries=None, backoff=Linear(1, 1, 10), timeout=None).begin()
    err = RecoverableConnectionError()
    delays = []
    for end in (False, False, True, False, False, True):
        state, delay = state.next(err, end_of_round=end)
        delays.append(delay)
    assert delays == [0, 0, 1, 0, 0, 2]
    assert (state.attempts, state.rounds) == (6, 2)


def test_deadline_checked_before_sleeping_never_overshoots() -> None:
    clock = FakeClock()
    state = policy(clock, max_retries=None, backoff=Constant(0.4), timeout=1.0).begin()
    err = RecoverableConnectionError()
    total = 0.0
    with pytest.raises(OperationalError, match="timeout of 1 s reached"):
        while True:
            clock.now += 0.05  # the attempt itself
            state, delay = state.next(err)
            clock.sleep(delay)
            total += delay
    assert clock.now - 100.0 <= 1.0
    assert total == pytest.approx(0.8)


def test_remaining_time_is_reported_and_never_negative() -> None:
    clock = FakeClock()
    state = policy(clock, timeout=5).begin()
    clock.now += 2
    assert state.remaining() == pytest.approx(3)
    clock.now += 10
    assert state.remaining() == 0
    assert policy(clock, timeout=None).begin().remaining() is None


def test_states_are_immutable_values() -> None:
    clock = FakeClock()
    first = policy(clock, max_retries=5, timeout=None).begin()
    second, _ = first.next(RecoverableConnectionError())
    assert first.attempts == 0 and second.attempts == 1


@pytest.mark.parametrize(
    ("exc", "retried_when_asked"),
    [
        (AuthenticationError("login refused"), False),
        (TLSVerificationError("bad cert"), False),
        (ConfigurationError("bad"), False),
        (NotFound("no queue"), True),
        (IrrecoverableChannelError("406"), True),
        (ValueError("user bug"), True),
    ],
)
def test_auth_tls_and_config_errors_are_never_retried(
    exc: BaseException, retried_when_asked: bool
) -> None:
    assert RetryPolicy(on=(Exception,)).retryable(exc) is retried_when_asked
    assert RetryPolicy().retryable(exc) is False


def test_default_policy_retries_recoverable_errors_only() -> None:
    p = RetryPolicy()
    assert p.retryable(RecoverableConnectionError())
    assert p.retryable(RecoverableChannelError())
    assert not p.retryable(OSError())


def test_kombu_keywords_map_onto_linear_backoff_with_a_bounded_default() -> None:
    p = RetryPolicy.from_intervals(None, 2, 2, 30)
    assert p.backoff == Linear(2, 2, 30)
    assert p.timeout == DEFAULT_RETRY_POLICY.timeout and p.max_retries is None
    # A count alone keeps the default deadline: only what is given is overridden.
    assert RetryPolicy.from_intervals(3).timeout == DEFAULT_RETRY_POLICY.timeout
    assert RetryPolicy.from_intervals(3, timeout=math.inf).timeout is None
    assert RetryPolicy.from_intervals(None, timeout=math.inf).timeout is None
    assert RetryPolicy.from_intervals(None, timeout=4).timeout == 4


def test_there_is_one_default_policy_and_it_is_bounded() -> None:
    assert RetryPolicy() == DEFAULT_RETRY_POLICY == RetryPolicy.from_intervals()
    assert DEFAULT_RETRY_POLICY.timeout == 15.0 and DEFAULT_RETRY_POLICY.max_retries is None
    assert DEFAULT_RETRY_POLICY.backoff == Linear(start=0.5, step=0.5, maximum=3.0)
    clock = FakeClock()
    state = DEFAULT_RETRY_POLICY.replace(clock=clock, sleep=clock.sleep).begin()
    err = RecoverableConnectionError("refused")
    with pytest.raises(OperationalError, match="timeout of 15 s reached"):
        while True:
            # Two alternates: the first failure of each round fails over at once.
            state, delay = state.next(err, end_of_round=state.attempts % 2 == 1)
            clock.sleep(delay)
    assert clock.slept[:8] == [0, 0.5, 0, 1.0, 0, 1.5, 0, 2.0]
    assert max(clock.slept) == 3.0 and clock.now - 100.0 <= 15.0


@pytest.mark.parametrize(
    ("keywords", "backoff"),
    [
        ({"interval_start": 2}, Linear(2, 0.5, 3.0)),
        ({"interval_start": 5}, Linear(5, 0.5, 5)),  # the cap rises to a larger start
        ({"interval_start": 5, "interval_max": 1}, Linear(5, 0.5, 1)),
        ({"interval_step": 0}, Linear(0.5, 0, 3.0)),
        ({"interval_max": 10}, Linear(0.5, 0.5, 10)),
    ],
)
def test_kombu_keywords_override_only_what_they_give(
    keywords: dict[str, float], backoff: Linear
) -> None:
    p = RetryPolicy.from_intervals(**keywords)
    assert p.backoff == backoff
    assert (p.max_retries, p.timeout, p.on) == (
        DEFAULT_RETRY_POLICY.max_retries,
        DEFAULT_RETRY_POLICY.timeout,
        DEFAULT_RETRY_POLICY.on,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"timeout": -2},
        {"timeout": float("nan")},
        {"on": (ValueError, 3)},
        {"on": [ValueError]},
    ],
)
def test_bad_policy_values_raise_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert next(iter(kwargs)) in str(info.value)


@pytest.mark.parametrize("bad", [Linear, Constant, Exponential])
def test_negative_backoff_values_rejected(bad: type) -> None:
    with pytest.raises(ConfigurationError):
        bad(-1)


def test_replace_returns_a_new_policy() -> None:
    p = RetryPolicy(max_retries=1)
    q = p.replace(max_retries=4)
    assert (p.max_retries, q.max_retries) == (1, 4)
