"""Failing over between a connection's alternate brokers: :class:`Failover` and the strategies.

:class:`Failover` holds the alternates of one :class:`broker.Connection` and the
one in use, and moves along them in the order its strategy gives. The
connection asks it for the current target and tells it when to move on; the
retry loops decide when that is.

A strategy is a callable that takes the sequence of alternates and returns an
endless iterator over them. Built in:

* ``'round-robin'`` -- the alternates in order, again and again.
* ``'shuffle'`` -- a fresh random permutation for every pass, so no host is
  tried twice before every host was tried once (and, with two or more hosts,
  never the same host twice in a row across a pass boundary).

Any callable with the same shape may be passed instead, e.g.
``lambda hosts: itertools.cycle(reversed(hosts))``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from broker.errors import ConfigurationError
from broker.instrumentation import hooks as instrumentation
from broker.url.targets import Target

__all__ = [
    "STRATEGIES",
    "Failover",
    "FailoverStrategy",
    "UrlStrategy",
    "resolve_strategy",
    "round_robin",
    "shuffle",
]

T = TypeVar("T")

#: The shape of a failover strategy.
FailoverStrategy = Callable[[Sequence[T]], Iterator[T]]


def round_robin(alternates: Sequence[T]) -> Iterator[T]:
    """Cycle through ``alternates`` in order."""
    return itertools.cycle(list(alternates))


def shuffle(alternates: Sequence[T], rng: random.Random | None = None) -> Iterator[T]:
    """Cycle through a new random permutation of ``alternates`` on every pass."""
    items = list(alternates)
    chooser = rng if rng is not None else random.Random()
    previous: T | None = None
    while True:
        order = items[:]
        chooser.shuffle(order)
        if len(order) > 1 and order[0] is previous:
            # Keep the permutation but avoid trying the same host twice in a row.
            order[0], order[-1] = order[-1], order[0]
        yield from order
        previous = order[-1]


#: A strategy over a connection's alternates, given as URLs.
UrlStrategy = Callable[[Sequence[str]], Iterator[str]]

STRATEGIES: dict[str, UrlStrategy] = {
    "round-robin": round_robin,
    "round_robin": round_robin,
    "shuffle": shuffle,
}


def resolve_strategy(strategy: str | UrlStrategy) -> UrlStrategy:
    """Turn a strategy name or callable into a callable.

    Raises:
        ConfigurationError: an unknown name or a non-callable value.
    """
    if isinstance(strategy, str):
        try:
            return STRATEGIES[strategy.lower()]
        except KeyError:
            raise ConfigurationError(
                f"failover_strategy {strategy!r} is not known; use 'round-robin', "
                f"'shuffle' or a callable returning an iterator of URLs"
            ) from None
    if callable(strategy):
        return strategy
    raise ConfigurationError(
        f"failover_strategy must be 'round-robin', 'shuffle' or a callable, got {strategy!r}"
    )


class Failover:
    """The alternates of one connection, the one in use, and the order to move along them.

    Args:
        targets: the alternates, at least one.
        strategy: a resolved strategy (see :func:`resolve_strategy`); it is
            given the alternates' URLs (passwords included, so that two
            accounts on one host stay apart) and must yield only those.

    Raises:
        ConfigurationError: the strategy yielded something else.
    """

    def __init__(self, targets: Sequence[Target], strategy: UrlStrategy) -> None:
        self._targets = tuple(targets)
        self._by_uri = {t.url.as_uri(include_password=True): t for t in self._targets}
        self._cycle = iter(strategy(list(self._by_uri)))
        self._current = self._next()

    @property
    def current(self) -> Target:
        """The alternate in use (or to be tried next)."""
        return self._current

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every alternate, in the order given."""
        return self._targets

    def __len__(self) -> int:
        return len(self._targets)

    def advance(self) -> None:
        """Make the next alternate current; with a single one, nothing changes."""
        if len(self._targets) > 1:
            previous, self._current = self._current, self._next()
            if instrumentation.active is not None and previous is not self._current:
                instrumentation.active.failed_over(previous, self._current)

    def describe(self) -> str:
        """Every alternate's URL, passwords masked, separated by ``;``."""
        return ";".join(t.as_uri() for t in self._targets)

    def _next(self) -> Target:
        uri = next(self._cycle)
        target = self._by_uri.get(uri) if isinstance(uri, str) else None
        if target is None:
            raise ConfigurationError(
                f"failover_strategy yielded {uri!r}, which is not one of this connection's URLs"
            )
        return target

    def __repr__(self) -> str:
        return f"<Failover {self._current.as_uri()} of {len(self._targets)}>"
