"""The benchmark harness: cases, interleaved rounds, medians and ratios.

A :class:`Case` measures one thing for several libraries. Each library has a
*runner*: a context-manager factory that sets up (untimed), yields a
``measure()`` function returning one number per call, and tears down. The
harness enters every library's runner, then calls the ``measure()`` functions
round by round, rotating the order each round, so that drift in the machine
(other processes, CPU frequency, broker state) hits all libraries alike.
Reported figures are medians over rounds with their spread (min and max);
ratios compare brokerpool's median with kombu's and with raw py-amqp's
measured in the same run, and their spread is that of the per-round ratios
(round *i* of brokerpool against round *i* of the other library, measured
next to each other).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AIO_PIKA",
    "BROKERPOOL",
    "KOMBU",
    "PIKA",
    "RAW",
    "Case",
    "CaseResult",
    "Env",
    "Runner",
    "Skip",
    "Spread",
    "run_case",
    "throughput",
]

BROKERPOOL = "brokerpool"
KOMBU = "kombu"
RAW = "py-amqp"
PIKA = "pika"
#: The asyncio cases' comparison (bench/cases/aio.py); reported after the other columns.
AIO_PIKA = "aio-pika"
#: Column order in reports.
LIBRARIES = (BROKERPOOL, KOMBU, RAW, PIKA)


class Skip(Exception):
    """Raised by a runner (or a case fixture) that cannot run here; the text is the reason."""


@dataclass
class Env:
    """What runners get: where the broker is, how long to run, the case's shared fixture."""

    url: str
    quick: bool
    shared: Any = None

    def n(self, full: int, quick: int) -> int:
        """An iteration count: ``full`` normally, ``quick`` under ``--quick``."""
        return quick if self.quick else full


#: ``runner(env)`` -> a context manager yielding ``measure() -> float``.
Runner = Callable[[Env], ContextManager[Callable[[], float]]]


@dataclass
class Case:
    """One benchmark: what is measured, in which unit, for which libraries.

    Attributes:
        key: short name used by ``--cases``.
        title: one line for the table.
        unit: unit of the measured value, e.g. ``"msg/s"`` or ``"ms"``.
        higher_is_better: throughput cases True, latency/size cases False.
        runners: library name -> runner.
        method: how it is measured, for the notes under the table.
        target: the goal brokerpool aims for, e.g. ``"≥ 0.95x py-amqp"``.
        rounds: rounds for this case (``None``: the run's default).
        warmup: call each ``measure()`` once, unrecorded, before the rounds.
        fixture: a context-manager factory shared by all runners (``env.shared``).
        needs: what must exist: ``"rabbitmq"``, ``"nodes"`` (extra RabbitMQ nodes).
    """

    key: str
    title: str
    unit: str
    higher_is_better: bool
    runners: dict[str, Runner]
    method: str
    target: str = ""
    rounds: int | None = None
    warmup: bool = True
    fixture: Callable[[Env], ContextManager[Any]] | None = None
    needs: frozenset[str] = frozenset({"rabbitmq"})


@dataclass(frozen=True)
class Spread:
    """A figure with its range over the rounds: ``low <= middle <= high``."""

    low: float
    middle: float
    high: float

    def inverted(self) -> Spread:
        """``1 / x`` of each (the range flips): a time ratio read as times faster."""
        return Spread(_inverse(self.high), _inverse(self.middle), _inverse(self.low))


def _inverse(value: float) -> float:
    return 1 / value if value else math.inf


@dataclass
class CaseResult:
    """Samples per library, and why a library (or the whole case) did not run."""

    case: Case
    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def median(self, library: str) -> float | None:
        values = self.samples.get(library)
        return statistics.median(values) if values else None

    def spread(self, library: str) -> Spread | None:
        """``library``'s min, median and max over the rounds (None if it has no figure)."""
        values = self.samples.get(library)
        if not values:
            return None
        return Spread(min(values), statistics.median(values), max(values))

    def round_ratios(self, other: str) -> list[float]:
        """brokerpool's figure divided by ``other``'s, round by round."""
        mine, theirs = self.samples.get(BROKERPOOL, []), self.samples.get(other, [])
        return [a / b for a, b in zip(mine, theirs, strict=False) if b]

    def ratio_spread(self, other: str) -> Spread | None:
        """The ratio of medians, between the lowest and highest per-round ratio.

        The ratio of the medians always lies within the per-round range, which
        shows how much one draw could differ: a pool benchmark whose kombu
        figure swings from round to round gets a wide range, not one number.
        """
        ratio, rounds = self.ratio(other), self.round_ratios(other)
        if ratio is None or not rounds:
            return None
        return Spread(min(rounds), ratio, max(rounds))

    def ratio(self, other: str) -> float | None:
        """brokerpool's median divided by ``other``'s (None if either is missing)."""
        mine, theirs = self.median(BROKERPOOL), self.median(other)
        if mine is None or theirs is None or theirs == 0:
            return None
        return mine / theirs

    def advantage(self, other: str) -> float | None:
        """How many times better brokerpool is than ``other`` (> 1: brokerpool wins)."""
        ratio = self.ratio(other)
        if ratio is None or ratio == 0:
            return None
        return ratio if self.case.higher_is_better else 1 / ratio


def throughput(count: int, seconds: float) -> float:
    """Operations per second, guarding against a zero duration."""
    return count / max(seconds, 1e-9)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, Skip) else f"{type(exc).__name__}: {text}"


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _entered(
    case: Case, env: Env, result: CaseResult, verbose: bool
) -> Iterator[dict[str, Callable[[], float]]]:
    """Enter every library's runner; record a skip for those whose setup fails."""
    measures: dict[str, Callable[[], float]] = {}
    with contextlib.ExitStack() as stack:
        for library, runner in case.runners.items():
            try:
                measures[library] = stack.enter_context(runner(env))
            except Exception as exc:
                result.skipped[library] = _describe(exc)
                if verbose and not isinstance(exc, Skip):
                    traceback.print_exc()
        yield measures


def run_case(case: Case, url: str, quick: bool, rounds: int, verbose: bool = False) -> CaseResult:
    """Run ``case`` for every library, interleaved, ``rounds`` times."""
    result = CaseResult(case)
    started = time.monotonic()
    rounds = min(rounds, case.rounds) if case.rounds is not None else rounds
    env = Env(url=url, quick=quick)
    try:
        with contextlib.ExitStack() as stack:
            if case.fixture is not None:
                env.shared = stack.enter_context(case.fixture(env))
            with _entered(case, env, result, verbose) as measures:
                _rounds(case, measures, result, rounds, verbose)
    except Exception as exc:  # the shared fixture (or a teardown) failed
        result.error = _describe(exc)
        if verbose and not isinstance(exc, Skip):
            traceback.print_exc()
    result.seconds = time.monotonic() - started
    return result


def _rounds(
    case: Case,
    measures: dict[str, Callable[[], float]],
    result: CaseResult,
    rounds: int,
    verbose: bool,
) -> None:
    live = dict(measures)
    order = list(live)
    calls = ([None] if case.warmup else []) + list(range(rounds))
    for index, round_no in enumerate(calls):
        # Rotate so that no library is always first (cold) or last (warm).
        shift = index % max(len(order), 1)
        for library in order[shift:] + order[:shift]:
            measure = live.get(library)
            if measure is None:
                continue
            try:
                value = measure()
            except Exception as exc:
                result.skipped[library] = f"failed: {_describe(exc)}"
                result.samples.pop(library, None)
                del live[library]
                if verbose:
                    traceback.print_exc()
                continue
            if round_no is not None:
                result.samples.setdefault(library, []).append(value)
        label = " (warm-up)" if round_no is None else ""
        _log(f"  {case.key}: round {index + 1}/{len(calls)}{label}")
