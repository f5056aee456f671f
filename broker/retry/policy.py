"""Retry policies as immutable values, and stateless backoff strategies.

A :class:`RetryPolicy` says how often and how long to retry, how long to wait
between rounds and which errors are worth retrying. Walking through a retry
loop produces :class:`RetryState` values: :meth:`RetryState.next` returns the
advanced state and the delay to sleep, or raises
:class:`~broker.errors.OperationalError` (with the last error as
``__cause__``) when the budget is spent. No I/O and no sleeping happens here;
time and randomness are injected so tests never sleep.

There is one default, :data:`DEFAULT_RETRY_POLICY` (what ``RetryPolicy()``
builds), and every entry point uses it unless the caller passes another:
``ensure_connection()``, ``ensure()``, ``autoretry()``, implicit connects and
``publish(retry=True)``. kombu's loose keywords (``max_retries``,
``interval_start``, ``interval_step``, ``interval_max``, ``timeout``) are a
thin adapter onto it (:meth:`RetryPolicy.from_intervals`): ``None`` means "the
default's value", and only what the caller gives is overridden. The consumer
loop's reconnect-forever policy is the one deliberate exception (see
:mod:`broker.messaging.consumer_loop`).

Authentication, TLS verification and configuration errors are never retried,
whatever ``on`` says.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from broker.errors import (
    AuthenticationError,
    ConfigurationError,
    OperationalError,
    RecoverableChannelError,
    RecoverableConnectionError,
    TLSHandshakeError,
    TLSVerificationError,
)
from broker.timeouts import check_timeout

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "Backoff",
    "Constant",
    "Exponential",
    "FullJitter",
    "Linear",
    "RetryPolicy",
    "RetryState",
]

#: Errors that no policy retries: retrying them only repeats the failure.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    AuthenticationError,
    TLSVerificationError,
    TLSHandshakeError,
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


# The values of DEFAULT_RETRY_POLICY (RetryPolicy's field defaults); the reasons are given there.
_DEFAULT_BACKOFF = Linear(start=0.5, step=0.5, maximum=3.0)
_DEFAULT_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry: an immutable value.

    ``RetryPolicy()`` is :data:`DEFAULT_RETRY_POLICY`; pass fields to change them.

    Attributes:
        max_retries: retries after the first attempt (``N`` means ``N + 1``
            attempts); ``None`` (the default) means no limit on the count.
        backoff: the delay between rounds; a round is one pass over every
            alternate broker, and within a round there is no sleep. Default:
            ``Linear(start=0.5, step=0.5, maximum=3.0)``.
        timeout: total seconds for all attempts and sleeps (default 15);
            ``None`` means no deadline. The deadline is checked before every
            attempt and every sleep, and a connect attempt is cut to the time
            left, so it is overshot by at most one short attempt.
        on: the error classes worth retrying (default: recoverable connection
            and channel errors).
        clock: monotonic clock (injected in tests).
        sleep: sleep function (injected in tests).
    """

    max_retries: int | None = None
    backoff: Backoff = _DEFAULT_BACKOFF
    timeout: float | None = _DEFAULT_TIMEOUT
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
        check_timeout(self.timeout)
        if not isinstance(self.on, tuple) or not all(
            isinstance(cls, type) and issubclass(cls, BaseException) for cls in self.on
        ):
            raise ConfigurationError(f"on must be a tuple of exception classes, got {self.on!r}")

    @classmethod
    def from_intervals(
        cls,
        max_retries: int | None = None,
        interval_start: float | None = None,
        interval_step: float | None = None,
        interval_max: float | None = None,
        timeout: float | None = None,
        on: tuple[type[BaseException], ...] | None = None,
    ) -> RetryPolicy:
        """Build a policy from kombu's loose keywords, on top of :data:`DEFAULT_RETRY_POLICY`.

        Each keyword left at ``None`` keeps the default's value; only what is
        given is overridden. The three intervals shape a :class:`Linear`
        backoff; an ``interval_start`` above the default maximum raises the
        maximum to it, unless ``interval_max`` is given too.
        ``timeout=math.inf`` means no deadline (retry until ``max_retries``,
        or forever without it).
        """
        default = DEFAULT_RETRY_POLICY
        backoff = default.backoff
        if interval_start is not None or interval_step is not None or interval_max is not None:
            start = _DEFAULT_BACKOFF.start if interval_start is None else interval_start
            backoff = Linear(
                start,
                _DEFAULT_BACKOFF.step if interval_step is None else interval_step,
                max(_DEFAULT_BACKOFF.maximum, start) if interval_max is None else interval_max,
            )
        timeout = check_timeout(timeout)
        if timeout is None:
            timeout = default.timeout
        elif math.isinf(timeout):
            timeout = None
        return cls(
            max_retries=default.max_retries if max_retries is None else max_retries,
            backoff=backoff,
            timeout=timeout,
            on=default.on if on is None else on,
        )

    def retryable(self, exc: BaseException) -> bool:
        """Whether this policy retries ``exc`` (never auth/TLS/config errors)."""
        return isinstance(exc, self.on) and not isinstance(exc, NEVER_RETRIED)

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def begin(self) -> RetryState:
        """Start a retry loop now."""
        return RetryState(policy=self, started=self.clock())


DEFAULT_RETRY_POLICY: Final = RetryPolicy()
"""The one default: 15 s in total, failing over at once, pausing 0.5 s more per round up to 3 s.

Used by ``ensure_connection()``, ``ensure()``, ``autoretry()``, implicit connects
(``connect()``, ``channel()``, ``default_channel``, ``drain_events()``, a
publish that needs a connection) and ``publish(retry=True)``, unless the
caller passes a policy or loose keywords.

* No count limit, a 15 s deadline. Time is what callers can plan with: a web
  worker must answer well within its request timeout (gunicorn kills a
  worker after 30 s by default), and 15 s leaves room for the rest of the
  request; a publisher or consumer service rides out what 15 s covers -- a
  network blip, a failover to another node, a broker restart (5-8 s for
  RabbitMQ) -- and longer outages belong to the consumer loop, which
  retries forever by design (:mod:`broker.messaging.consumer_loop`).
* Within a round the next alternate is tried at once: a dead node costs one
  refused connect (or one ``connect_timeout``), never a sleep.
* Between rounds: 0.5 s, 1 s, 1.5 s ... up to 3 s. The first pauses are
  short because most failures are blips or a failover race; the cap keeps a
  broker that comes back in use within 3 s; over 15 s this makes about seven
  rounds, so a single broker is tried about eight times.
"""


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
