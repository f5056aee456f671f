"""A read-only Redis replica listed first: the connection moves on to the primary."""

from __future__ import annotations

import time
from collections.abc import Callable

from broker import Connection
from tests.support.redisnode import RedisNode


def test_a_read_only_replica_is_skipped_for_the_next_url(
    redis_node_factory: Callable[..., RedisNode],
) -> None:
    primary = redis_node_factory(extra_args=("--shutdown-timeout", "0"))  # no wait for replicas
    primary.start()
    replica = redis_node_factory(extra_args=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    with Connection(f"{replica.url()};{primary.url()}") as conn:
        started = time.monotonic()
        conn.ensure_connection(max_retries=2, interval_start=0)
        assert conn.as_uri() == primary.url()
        assert time.monotonic() - started < 1.0
