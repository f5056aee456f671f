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

The alternates may also come from a *resolver* (like the RabbitMQ Java
client's address resolver): a callable asked for the current node list before
the first connect, and again each time every node of the last list was tried
once. Its list replaces the alternates and the strategy starts over on it,
so with ``'shuffle'`` clients spread over the nodes it names.
"""

from __future__ import annotations

import itertools
import logging
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
    "Resolve",
    "UrlStrategy",
    "resolve_strategy",
    "round_robin",
    "shuffle",
]

logger = logging.getLogger("broker.connection")

T = TypeVar("T")

#: Returns the current alternates, already resolved into targets.
Resolve = Callable[[], Sequence[Target]]

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
        targets: the alternates, at least one (with ``resolve``: the ones used
            until it first answers, and whenever it fails).
        strategy: a resolved strategy (see :func:`resolve_strategy`); it is
            given the alternates' URLs (passwords included, so that two
            accounts on one host stay apart) and must yield only those.
        resolve: returns the current alternates; asked by :meth:`refresh`.

    Raises:
        ConfigurationError: the strategy yielded something else.
    """

    def __init__(
        self, targets: Sequence[Target], strategy: UrlStrategy, resolve: Resolve | None = None
    ) -> None:
        self._strategy = strategy
        self._resolve = resolve
        self._resolved = False  # whether resolve() was asked yet
        self._use(targets)

    def _use(self, targets: Sequence[Target]) -> None:
        self._targets = tuple(targets)
        self._by_uri = {t.url.as_uri(include_password=True): t for t in self._targets}
        self._cycle = iter(self._strategy(list(self._by_uri)))
        self._current = self._next()
        self._moves = 0  # advances since this list was taken up

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
        self._moves += 1

    def refresh(self) -> None:
        """Ask the resolver for the current alternates, when that is due.

        Due before the first connect and whenever every alternate of the last
        list has been moved past once; without a resolver, never. A resolver
        that fails, or names no node, leaves the alternates as they are (the
        failure is logged) until the next pass.

        Raises:
            ConfigurationError: the resolver returned something that is not a
                broker URL or a list of them.
        """
        if self._resolve is None or (self._resolved and self._moves < len(self._targets)):
            return
        self._resolved = True
        try:
            targets = self._resolve()
        except ConfigurationError:
            raise
        except Exception as exc:  # the user's resolver: any failure of it is survivable
            logger.warning("the alternates' resolver failed (%s); keeping %s", exc, self.describe())
            self._moves = 0
            return
        if not targets:
            logger.warning("the alternates' resolver named no broker; keeping %s", self.describe())
            self._moves = 0
            return
        self._use(targets)

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
        resolver = " resolved" if self._resolve is not None else ""
        return f"<Failover {self._current.as_uri()} of {len(self._targets)}{resolver}>"
