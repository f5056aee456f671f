"""sentinel:// URLs and the Redis options for replicas and key layout, checked without I/O.

The transport against real Sentinels is tested in tests/cluster/test_sentinel_transport.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker import Connection
from broker.errors import ConfigurationError
from transports.base import ConnectionParams
from transports.redis.options import command_timeout, keyspace, replica_wait, settings
from transports.redis.sentinel import Transport as SentinelTransport
from transports.redis.sentinel import sentinel_settings

SENTINELS = "sentinel://s1;sentinel://:pw@s2:26380/2"
MASTER = {"master_name": "mymaster"}


def test_sentinel_urls_name_sentinels_on_their_own_port() -> None:
    conn = Connection(SENTINELS, transport_options=MASTER)
    assert conn.transport_cls is SentinelTransport and conn.transport_cls.name == "sentinel"
    assert conn.info()["alternates"] == ["sentinel://s1:26379//", "sentinel://:**@s2:26380/2"]
    assert conn.port == 26379 and conn.info()["node"] is None


def test_sentinel_settings_read_the_login_and_keep_the_password_out_of_repr() -> None:
    params = ConnectionParams(
        "s1",
        26379,
        transport_options={
            **MASTER,
            "sentinel_kwargs": {"username": "watch", "password": "s3cret", "socket_timeout": 0.5},
        },
    )
    found = sentinel_settings(params)
    assert (found.master_name, found.username, found.password) == ("mymaster", "watch", "s3cret")
    assert found.socket_timeout == 0.5 and "s3cret" not in repr(found)


@pytest.mark.parametrize(
    ("options", "kwargs", "message"),
    [
        ({}, {}, r"sentinel:// needs transport_options=\{'master_name': ...\}"),
        ({"master_name": ""}, {}, "needs transport_options"),
        ({**MASTER, "sentinel_kwargs": "pw"}, {}, "'sentinel_kwargs' must be a mapping"),
        ({**MASTER, "sentinel_kwargs": {"db": 1}}, {}, "unknown sentinel_kwargs key"),
        ({**MASTER, "sentinel_kwargs": {"password": 1}}, {}, "must be a string"),
        ({**MASTER, "sentinel_kwargs": {"socket_timeout": 0}}, {}, "socket_timeout"),
        ({**MASTER, "master": "m"}, {}, r"'master' \(did you mean 'master_name'\?\)"),
        (MASTER, {"ssl": True}, "sentinel:// does not support TLS"),
        ({**MASTER, "min_replicas": -1}, {}, "'min_replicas' must be an integer >= 0 or None"),
        ({**MASTER, "min_replicas": True}, {}, "'min_replicas' must be an integer"),
        ({**MASTER, "replica_timeout": 0}, {}, "replica_timeout"),
    ],
)
def test_bad_sentinel_options_fail_when_the_connection_is_made(
    options: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Connection(SENTINELS, transport_options=options, **kwargs)


def test_sentinel_options_are_no_options_of_redis_urls() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown redis transport option.*'master_name'"):
        Connection("redis://r1/0", transport_options=MASTER)


def test_replica_options_and_their_defaults() -> None:
    params = ConnectionParams("r1", 6379, transport_options={"min_replicas": 2})
    found = settings(params)
    assert (found.min_replicas, found.replica_timeout) == (2, 2.0)
    assert settings(ConnectionParams("r1", 6379)).min_replicas is None  # 1 while there is one
    assert replica_wait(params, found) == 2.0
    # A WAIT never outlasts half the command timeout (two heartbeats with heartbeats on).
    beating = ConnectionParams("r1", 6379, heartbeat=1.5)
    assert command_timeout(beating, found) == 3.0
    assert replica_wait(beating, found) == 1.5


@pytest.mark.parametrize(
    ("prefix", "db", "expected"),
    [
        ("brokerpool:", 0, "brokerpool:{0}:"),
        ("app:", 13, "app:{13}:"),
        ("{orders}:", 0, "{orders}:{0}:"),  # the prefix's own hash tag comes first, and wins
    ],
)
def test_every_key_of_a_database_and_prefix_shares_one_hash_tag(
    prefix: str, db: int, expected: str
) -> None:
    assert keyspace(prefix, db) == expected
    params = ConnectionParams(
        "r1", 6379, virtual_host=f"/{db}", transport_options={"key_prefix": prefix}
    )
    assert settings(params).keyspace == expected


def test_a_prefix_opening_an_empty_hash_tag_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"must not start a hash tag with '\{\}'"):
        Connection("redis://r1/0", transport_options={"key_prefix": "app{}:"})
