"""Cluster-aware connecting: the node a connection reached, and alternates from a resolver.

A resolver (like the RabbitMQ Java client's address resolver) is asked for the
current node list before the first connect and again after every node of its
last answer was moved past once; until then, and whenever it fails, the URLs
given to the Connection are used.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
from collections.abc import Callable, Iterator, Sequence

import pytest

from broker import Connection
from broker.connection.failover import Failover, resolve_strategy, shuffle
from broker.errors import ConfigurationError
from broker.url.targets import Target, build_targets


def targets(*urls: str) -> tuple[Target, ...]:
    return build_targets(
        list(urls), alternates=None, transport=None, userid=None, password=None,
        virtual_host=None, port=None, ssl=False, connect_timeout=5, heartbeat=0,
        login_method=None, transport_options={}, connection_name=None, client_properties=None,
    )  # fmt: skip


class Answers:
    """A resolver returning its answers in turn (an exception is raised), counting calls."""

    def __init__(self, *answers: Sequence[Target] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> Sequence[Target]:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def hosts(failover: Failover, moves: int) -> list[str]:
    """The current host, then after each of ``moves`` advances (refreshing as connects do)."""
    seen = []
    for _ in range(moves + 1):
        failover.refresh()
        seen.append(failover.current.params.hostname)
        failover.advance()
    return seen


def test_the_resolver_is_asked_first_and_after_each_pass() -> None:
    resolver = Answers(targets("amqp://b//", "amqp://c//"), targets("amqp://d//"))
    failover = Failover(targets("amqp://a//"), resolve_strategy("round-robin"), resolver)
    assert failover.current.params.hostname == "a" and resolver.calls == 0  # no I/O yet
    assert hosts(failover, 4) == ["b", "c", "d", "d", "d"]
    assert resolver.calls == 4  # before b, then after each full pass: (b, c), (d), (d)
    assert "resolved" in repr(failover)


def test_a_failing_or_empty_resolver_leaves_the_alternates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = Answers(OSError("dns down"), (), targets("amqp://c//"))
    failover = Failover(
        targets("amqp://a//", "amqp://b//"), resolve_strategy("round-robin"), resolver
    )
    with caplog.at_level(logging.WARNING, logger="broker.connection"):
        assert hosts(failover, 4) == ["a", "b", "a", "b", "c"]
    assert resolver.calls == 3
    assert "resolver failed (dns down); keeping amqp://guest:**@a:5672//" in caplog.text
    assert "resolver named no broker; keeping" in caplog.text


def test_without_a_resolver_refresh_changes_nothing() -> None:
    failover = Failover(targets("amqp://a//", "amqp://b//"), resolve_strategy("round-robin"))
    assert hosts(failover, 3) == ["a", "b", "a", "b"]


def test_shuffle_starts_over_on_each_answer_and_spreads_first_connects() -> None:
    nodes = targets("amqp://n1//", "amqp://n2//", "amqp://n3//")
    firsts = set()
    for seed in range(12):
        strategy = functools.partial(shuffle, rng=random.Random(seed))
        failover = Failover(targets("amqp://seed//"), strategy, Answers(nodes))
        failover.refresh()
        firsts.add(failover.current.params.hostname)
        assert sorted(hosts(failover, 2)) == ["n1", "n2", "n3"]  # one pass: each node once
    assert firsts == {"n1", "n2", "n3"}  # clients do not all start on the first node


# -- through the Connection -------------------------------------------------------------


@pytest.fixture
def resolved() -> Iterator[tuple[Connection, list[int]]]:
    calls: list[int] = []

    def resolver() -> list[str]:
        calls.append(1)
        return ["memory://c/", "memory://d/"]

    conn = Connection("memory://a/;memory://b/", resolver=resolver)
    yield conn, calls
    conn.close()


def test_connection_asks_its_resolver_on_connect_and_records_the_node(
    resolved: tuple[Connection, list[int]],
) -> None:
    conn, calls = resolved
    assert (conn.host, conn.info()["node"], calls) == ("a", None, [])  # lazy: nothing asked yet
    identity = conn.identity
    conn.connect()
    assert (conn.info()["node"], len(calls)) == ("c", 1)
    assert conn.info()["alternates"] == ["memory://guest:**@c//", "memory://guest:**@d//"]
    assert conn.identity == identity  # pools keep finding this connection's pool group
    conn.close()
    assert conn.info()["node"] is None
    for expected, asked in (("d", 1), ("c", 2)):  # a pass over c, d; then asked again
        conn.maybe_switch_next()
        conn.connect()
        assert (conn.info()["node"], len(calls)) == (expected, asked)
        conn.close()


def test_resolver_is_part_of_the_identity_and_clones_and_switch_drops_it(
    resolved: tuple[Connection, list[int]],
) -> None:
    conn, calls = resolved
    assert conn.identity != Connection("memory://a/;memory://b/").identity
    clone = conn.clone()
    assert clone.identity == conn.identity
    clone.connect()
    assert clone.info()["node"] == "c" and len(calls) == 1
    clone.close()
    conn.switch("memory://e/")
    conn.connect()
    assert conn.info()["node"] == "e" and len(calls) == 1


@pytest.mark.parametrize(
    ("resolver", "error"),
    [
        ("memory://x/", "resolver must be a callable returning broker URLs"),
        (lambda: ["memory://ok/", "nonsense://x/"], "unknown transport 'nonsense'"),
        (lambda: [42], "hostname must be a URL"),
    ],
)
def test_bad_resolvers_are_configuration_errors(
    resolver: Callable[[], object] | str, error: str
) -> None:
    with pytest.raises(ConfigurationError, match=error):
        Connection("memory://", resolver=resolver).connect()  # type: ignore[arg-type]


def test_node_names_the_broker_reached() -> None:
    with Connection("memory://a/;memory://b/") as conn:
        conn.connect()
        assert conn.info()["node"] == "a"
        conn.maybe_switch_next()
        conn.collect()
        conn.connect()
        assert conn.info()["node"] == "b"


def test_strategies_given_as_callables_still_cycle() -> None:
    failover = Failover(
        targets("amqp://a//", "amqp://b//"), lambda urls: itertools.cycle(reversed(urls))
    )
    assert hosts(failover, 2) == ["b", "a", "b"]
