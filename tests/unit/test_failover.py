"""Failover strategies: exact round-robin order; shuffle never repeats within a pass."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.connection.failover import resolve_strategy, round_robin, shuffle
from broker.errors import ConfigurationError


def test_round_robin_order_is_exact() -> None:
    it = round_robin(["a", "b", "c"])
    assert list(itertools.islice(it, 7)) == ["a", "b", "c", "a", "b", "c", "a"]


@given(
    hosts=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=8, unique=True),
    passes=st.integers(min_value=1, max_value=6),
    seed=st.integers(),
)
def test_shuffle_tries_every_host_once_per_pass(hosts: list[str], passes: int, seed: int) -> None:
    it = shuffle(hosts, rng=random.Random(seed))
    drawn = list(itertools.islice(it, len(hosts) * passes))
    for p in range(passes):
        window = drawn[p * len(hosts) : (p + 1) * len(hosts)]
        assert sorted(window) == sorted(hosts)
    if len(hosts) > 1:
        assert all(a != b for a, b in itertools.pairwise(drawn))


def test_shuffle_actually_varies_the_order() -> None:
    it = shuffle(list(range(6)), rng=random.Random(7))
    passes = {tuple(next(it) for _ in range(6)) for _ in range(20)}
    assert len(passes) > 1


def test_resolve_strategy_by_name_and_callable() -> None:
    assert resolve_strategy("round-robin") is round_robin
    assert resolve_strategy("SHUFFLE") is shuffle

    def custom(hosts: list[str]) -> itertools.cycle[str]:
        return itertools.cycle(reversed(hosts))

    assert resolve_strategy(custom) is custom


@pytest.mark.parametrize("bad", ["random", "", 42])
def test_unknown_strategy_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="failover_strategy"):
        resolve_strategy(bad)  # type: ignore[arg-type]
