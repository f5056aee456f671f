"""The asyncio API is the synchronous one's sibling: same options, names and errors."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import broker
import broker.aio
import transports
from broker.errors import ConfigurationError, OperationalError, TransportNotFound


def test_connection_takes_exactly_the_synchronous_connections_arguments() -> None:
    sync = inspect.signature(broker.Connection).parameters
    aio = inspect.signature(broker.aio.Connection).parameters
    assert list(aio) == list(sync)
    assert {n: p.default for n, p in aio.items()} == {n: p.default for n, p in sync.items()}
    assert {n: p.kind for n, p in aio.items()} == {n: p.kind for n, p in sync.items()}


def test_producer_publish_takes_the_synchronous_publish_arguments() -> None:
    sync = inspect.signature(broker.Producer.publish).parameters
    aio = inspect.signature(broker.aio.Producer.publish).parameters
    assert list(aio) == list(sync)
    assert {n: p.default for n, p in aio.items()} == {n: p.default for n, p in sync.items()}


def test_construction_does_no_io_and_needs_no_loop() -> None:
    conn = broker.aio.Connection("amqp://guest:secret@127.0.0.1:1//;amqp://127.0.0.1:2//")
    assert not conn.connected and conn.is_closed
    assert "secret" not in repr(conn) and "secret" not in str(conn.info())
    assert conn.as_uri() == "amqp://guest:**@127.0.0.1:1//"
    assert conn.alternate_count == 2


def test_unknown_options_and_transports_raise_the_synchronous_errors() -> None:
    with pytest.raises(ConfigurationError, match="heartbeet"):
        broker.aio.Connection("memory://", heartbeet=1)
    with pytest.raises(ConfigurationError, match="failover_strategy"):
        broker.aio.Connection("memory://", failover_strategy="sideways")
    # A transport registered for the synchronous API only: no asyncio sibling.
    transports.register("sync-only-bus", "transports.memory.transport:Transport")
    with pytest.raises(TransportNotFound, match="asyncio"):
        broker.aio.Connection("sync-only-bus://localhost/")


def test_every_built_in_transport_has_an_asyncio_sibling() -> None:
    for url in ("memory://", "amqp://h//", "amqps://h//", "pyamqp://h//", "redis://h/0",
                "rediss://h/0"):  # fmt: skip
        conn = broker.aio.Connection(url)
        assert conn.transport.name == broker.Connection(url).transport.name
    options = {"master_name": "mymaster"}
    sentinel = broker.aio.Connection("sentinel://h", transport_options=options)
    assert sentinel.transport.name == "sentinel" and sentinel.info()["port"] == 26379
    with pytest.raises(ConfigurationError, match="master_name"):  # the synchronous checks
        broker.aio.Connection("sentinel://h")


def test_same_urls_and_options_give_the_same_identity_as_the_synchronous_connection() -> None:
    url = "amqp://u:p@h:5672/v?heartbeat=5"
    assert broker.aio.Connection(url).identity == broker.Connection(url).identity


@pytest.mark.parametrize("url", ["memory://", "amqp://h//", "redis://h:6379/0"])
def test_kombus_connect_retry_options_are_accepted_by_every_transport(url: str) -> None:
    options = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
               "connect_retries_timeout": 5}  # fmt: skip
    conn = broker.aio.Connection(url, transport_options=options)
    assert conn.transport_options == options == conn.info()["transport_options"]
    assert conn.identity == broker.Connection(url, transport_options=options).identity


@pytest.mark.parametrize(
    "bad", [{"max_retries": "x"}, {"interval_start": -1}, {"connect_retries_timeout": float("nan")}]
)
def test_a_bad_connect_retry_option_is_refused_at_once(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        broker.aio.Connection("memory://", transport_options=bad)


@pytest.mark.asyncio
async def test_connect_retry_options_bound_connects_that_give_no_budget() -> None:
    options = {"max_retries": 1, "interval_start": 0}
    conn = broker.aio.Connection(
        "amqp://127.0.0.1:1//", connect_timeout=1, transport_options=options
    )
    with pytest.raises(OperationalError, match="after 2 attempts"):
        await conn.channel()  # an implicit connect: two attempts, not the default 15 s
