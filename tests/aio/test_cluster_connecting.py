"""Cluster-aware connecting on asyncio: the node a connection reached, alternates from a resolver.

The synchronous rules (``tests/unit/test_failover_resolver.py``), through
:class:`broker.aio.Connection`: the resolver is asked before the first
connect and again after every node of its last answer was moved past once;
until then the URLs given are used; it is part of the identity, clones share
it and ``switch`` drops it. ``info()["node"]`` is the ``host:port`` reached,
on every asyncio transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

import broker
from broker.aio import Connection
from broker.errors import ConfigurationError

pytestmark = pytest.mark.asyncio


class Nodes:
    """A resolver naming ``memory://c/`` and ``memory://d/``; ``calls`` counts its answers."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self) -> list[str]:
        self.calls.append(1)
        return ["memory://c/", "memory://d/"]


@pytest.fixture
def resolver() -> Nodes:
    return Nodes()


@pytest_asyncio.fixture
async def resolved(resolver: Nodes) -> AsyncIterator[tuple[Connection, list[int]]]:
    conn = Connection("memory://a/;memory://b/", resolver=resolver)
    yield conn, resolver.calls
    await conn.close()


async def test_connection_asks_its_resolver_on_connect_and_records_the_node(
    resolved: tuple[Connection, list[int]],
) -> None:
    conn, calls = resolved
    assert (conn.host, conn.info()["node"], calls) == ("a", None, [])  # lazy: nothing asked yet
    identity = conn.identity
    await conn.connect()
    assert (conn.info()["node"], len(calls)) == ("c", 1)
    assert conn.info()["alternates"] == ["memory://guest:**@c//", "memory://guest:**@d//"]
    assert conn.identity == identity  # pools keep finding this connection's pool group
    await conn.close()
    assert conn.info()["node"] is None
    for expected, asked in (("d", 1), ("c", 2)):  # a pass over c, d; then asked again
        conn.maybe_switch_next()
        await conn.connect()
        assert (conn.info()["node"], len(calls)) == (expected, asked)
        await conn.close()


async def test_resolver_is_part_of_the_identity_and_clones_and_switch_drops_it(
    resolved: tuple[Connection, list[int]], resolver: Nodes
) -> None:
    conn, calls = resolved
    assert conn.identity != Connection("memory://a/;memory://b/").identity
    sync = broker.Connection("memory://a/;memory://b/", resolver=resolver)
    assert conn.identity == sync.identity  # the synchronous key, resolver included
    clone = conn.clone()
    assert clone.identity == conn.identity
    await clone.connect()
    assert clone.info()["node"] == "c" and len(calls) == 1
    await clone.close()
    await conn.switch("memory://e/")
    await conn.connect()
    assert conn.info()["node"] == "e" and len(calls) == 1


@pytest.mark.parametrize(
    ("resolver", "error"),
    [
        ("memory://x/", "resolver must be a callable returning broker URLs"),
        (lambda: ["memory://ok/", "nonsense://x/"], "unknown transport 'nonsense'"),
        (lambda: [42], "hostname must be a URL"),
    ],
)
async def test_bad_resolvers_are_configuration_errors(
    resolver: Callable[[], object] | str, error: str
) -> None:
    with pytest.raises(ConfigurationError, match=error):
        await Connection("memory://", resolver=resolver).connect()  # type: ignore[arg-type]


async def test_a_failing_resolver_leaves_the_given_urls_in_use() -> None:
    def resolver() -> list[str]:
        raise OSError("service discovery is down")

    async with Connection("memory://a/", resolver=resolver) as conn:
        await conn.connect()
        assert conn.info()["node"] == "a"


async def test_the_resolver_is_asked_again_after_a_failed_pass() -> None:
    answers = [["amqp://127.0.0.1:1//"], ["memory://alive/"]]

    def resolver() -> list[str]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async with Connection("memory://given/", resolver=resolver, connect_timeout=1) as conn:
        # The first answer is refused; the pass over it is done, so the resolver is asked again.
        await conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
        assert conn.info()["node"] == "alive"


async def test_node_names_the_broker_reached(
    url: str, connection_options: dict[str, object]
) -> None:
    async with Connection(url, **connection_options) as conn:  # type: ignore[arg-type]
        assert conn.info()["node"] is None
        await conn.connect()
        assert conn.info()["node"] == conn.host
        await conn.close()
        assert conn.info()["node"] is None


async def test_node_follows_a_failover() -> None:
    async with Connection("memory://a/;memory://b/") as conn:
        await conn.connect()
        assert conn.info()["node"] == "a"
        conn.maybe_switch_next()
        conn.collect()
        await conn.connect()
        assert conn.info()["node"] == "b"
