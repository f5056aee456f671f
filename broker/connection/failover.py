"""Host-cycling strategies for connections with alternate brokers.

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

__all__ = ["STRATEGIES", "FailoverStrategy", "resolve_strategy", "round_robin", "shuffle"]

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


STRATEGIES: dict[str, Callable[[Sequence[object]], Iterator[object]]] = {
    "round-robin": round_robin,
    "round_robin": round_robin,
    "shuffle": shuffle,
}


def resolve_strategy(
    strategy: str | Callable[[Sequence[T]], Iterator[T]],
) -> Callable[[Sequence[T]], Iterator[T]]:
    """Turn a strategy name or callable into a callable.

    Raises:
        ConfigurationError: an unknown name or a non-callable value.
    """
    if isinstance(strategy, str):
        try:
            return STRATEGIES[strategy.lower()]  # type: ignore[return-value]
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
