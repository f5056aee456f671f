"""Retry policies as immutable values, and stateless backoff strategies.

A :class:`RetryPolicy` says how often and how long to retry, how long to wait
between rounds and which errors are worth retrying. Walking through a retry
loop produces :class:`RetryState` values: :meth:`RetryState.next` returns the
advanced state and the delay to sleep, or raises
:class:`~broker.errors.OperationalError` (with the last error as
``__cause__``) when the budget is spent. No I/O and no sleeping happens here;
time and randomness are injected so tests never sleep.

Defaults (one set, used everywhere):

* ``max_retries=None`` and ``timeout=None`` given together mean "the default
  budget": :data:`DEFAULT_TIMEOUT` seconds in total. Pass ``timeout=math.inf``
  to retry forever -- only when you really ask for it.
* kombu's ``interval_start``, ``interval_step`` and ``interval_max`` keywords
  map onto :class:`Linear` backoff (see :meth:`RetryPolicy.from_intervals`).
* Authentication, TLS verification and configuration errors are never
  retried, whatever ``on`` says.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from broker.errors import (
    AuthenticationError,
    ConfigurationError,
    OperationalError,
    RecoverableChannelError,
    RecoverableConnectionError,
    TLSVerificationError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Backoff",
    "Constant",
    "Exponential",
    "FullJitter",
    "Linear",
    "RetryPolicy",
    "RetryState",
]

#: Total budget in seconds when neither ``max_retries`` nor ``timeout`` is given.
DEFAULT_TIMEOUT = 60.0

#: Errors that no policy retries: retrying them only repeats the failure.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    AuthenticationError,
    TLSVerificationError,
    ConfigurationError,
)


class Backoff(Protocol):
    """A stateless backoff strategy."""

    def compute(self, attempt: int) -> float:
        """Seconds to wait before retry round ``attempt`` (1 for the first retry)."""
        ...


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Constant:
    """The same delay every time."""

    interval: float = 1.0

    def __post_init__(self) -> None:
        _check_non_negative("interval", self.interval)

    def compute(self, attempt: int) -> float:
        return float(self.interval)


@dataclass(frozen=True, slots=True)
class Linear:
    """``start``, then ``step`` more each round, capped at ``maximum`` (kombu's intervals)."""

    start: float = 1.0
    step: float = 1.0
    maximum: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start", "step", "maximum"):
            _check_non_negative(name, getattr(self, name))

    def compute(self, attempt: int) -> float:
        return float(min(self.start + self.step * (attempt - 1), self.maximum))


@dataclass(frozen=True, slots=True)
class Exponential:
    """``base * factor ** (attempt - 1)``, capped at ``maximum``."""

    base: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def __post_init__(self) -> None:
        for name in ("base", "factor", "maximum"):
            _check_non_negative(name, getattr(self, name))

    def compute(self, attempt: int) -> float:
        # Cap the exponent so huge attempt numbers cannot overflow.
        return float(min(self.base * self.factor ** min(attempt - 1, 64), self.maximum))


@dataclass(frozen=True, slots=True)
class FullJitter:
    """A uniformly random delay between 0 and the capped exponential delay (AWS "full jitter")."""

    base: float = 0.5
    maximum: float = 30.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_non_negative("base", self.base)
        _check_non_negative("maximum", self.maximum)

    def compute(self, attempt: int) -> float:
        ceiling = min(self.base * 2.0 ** min(attempt - 1, 64), self.maximum)
        return float(self.random() * ceiling)


def _default_on() -> tuple[type[BaseException], ...]:
    return (RecoverableConnectionError, RecoverableChannelError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry: an immutable value.

    Attributes:
        max_retries: retries after the first attempt (``N`` means ``N + 1``
            attempts); ``None`` means no limit on the count.
        backoff: the delay between rounds; a round is one pass over every
            alternate broker, and within a round there is no sleep.
        timeout: total seconds for all attempts and sleeps; ``None`` means
            no deadline. The deadline is checked before every attempt and
            every sleep, so it is overshot by at most one attempt.
        on: the error classes worth retrying.
        clock: monotonic clock (injected in tests).
        sleep: sleep function (injected in tests).
    """

    max_retries: int | None = None
    backoff: Backoff = field(default_factory=lambda: Linear(1.0, 1.0, 1.0))
    timeout: float | None = DEFAULT_TIMEOUT
    on: tuple[type[BaseException], ...] = field(default_factory=_default_on)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries is not None and (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"max_retries must be an integer >= 0 or None, got {self.max_retries!r}"
            )
        if self.timeout is not None:
            _check_non_negative("timeout", self.timeout)
        if not isinstance(self.on, tuple) or not all(
            isinstance(cls, type) and issubclass(cls, BaseException) for cls in self.on
        ):
            raise ConfigurationError(f"on must be a tuple of exception classes, got {self.on!r}")

    @classmethod
    def from_intervals(
        cls,
        max_retries: int | None = None,
        interval_start: float = 1.0,
        interval_step: float = 1.0,
        interval_max: float = 1.0,
        timeout: float | None = None,
        on: tuple[type[BaseException], ...] | None = None,
    ) -> RetryPolicy:
        """Build a policy from kombu's loose keywords.

        ``max_retries=None`` with ``timeout=None`` gets the default budget of
        :data:`DEFAULT_TIMEOUT` seconds; ``timeout=math.inf`` means no deadline.
        """
        if timeout is None and max_retries is None:
            timeout = DEFAULT_TIMEOUT
        elif timeout is not None and math.isinf(timeout):
            timeout = None
        return cls(
            max_retries=max_retries,
            backoff=Linear(interval_start, interval_step, interval_max),
            timeout=timeout,
            on=on if on is not None else _default_on(),
        )

    def retryable(self, exc: BaseException) -> bool:
        """Whether this policy retries ``exc`` (never auth/TLS/config errors)."""
        return isinstance(exc, self.on) and not isinstance(exc, NEVER_RETRIED)

    def replace(self, **changes: object) -> RetryPolicy:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def begin(self) -> RetryState:
        """Start a retry loop now."""
        return RetryState(policy=self, started=self.clock())


@dataclass(frozen=True, slots=True)
class RetryState:
    """Progress through a retry loop; every step returns a new value.

    Attributes:
        attempts: failed attempts so far.
        rounds: completed passes over the alternates so far.
    """

    policy: RetryPolicy
    started: float
    attempts: int = 0
    rounds: int = 0

    def elapsed(self) -> float:
        """Seconds since the loop began."""
        return self.policy.clock() - self.started

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None`` without one, never negative)."""
        if self.policy.timeout is None:
            return None
        return max(0.0, self.policy.timeout - self.elapsed())

    def next(
        self, exc: BaseException, *, end_of_round: bool = True, what: str = "operation failed"
    ) -> tuple[RetryState, float]:
        """Record the failed attempt ``exc``; return the new state and the delay.

        Args:
            exc: the error of the attempt that just failed.
            end_of_round: whether this attempt completed a pass over the
                alternates. Only then does the backoff advance and a delay
                apply; within a pass the next attempt follows at once.
            what: the start of the error message, e.g. ``"could not connect to
                amqp://guest:**@h:5672//"``.

        Raises:
            OperationalError: the error is not retryable, or the count or the
                deadline is spent; ``exc`` is its ``__cause__``.
        """
        attempts = self.attempts + 1
        rounds = self.rounds + 1 if end_of_round else self.rounds
        policy = self.policy
        delay = policy.backoff.compute(rounds) if end_of_round else 0.0
        reason: str | None = None
        if policy.max_retries is not None and attempts > policy.max_retries:
            reason = f"max_retries={policy.max_retries} reached"
        elif policy.timeout is not None:
            remaining = policy.timeout - (policy.clock() - self.started)
            if remaining <= 0 or delay >= remaining:
                reason = f"timeout of {policy.timeout:g} s reached"
        if reason is not None:
            plural = "s" if attempts != 1 else ""
            raise OperationalError(
                f"{what} after {attempts} attempt{plural} in {self.elapsed():.1f} s "
                f"({reason}; last error: {_describe(exc)})"
            ) from exc
        return replace(self, attempts=attempts, rounds=rounds), delay


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
