"""The Redis transport over TLS (``rediss://``), against a private redis-server with a TLS port.

The node listens in plain text on its own port (for readiness and cleanup)
and with TLS on a second port, with a throw-away CA and a server certificate
for localhost/127.0.0.1 (tests/support/tls.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import Connection
from broker.errors import TLSVerificationError
from tests.support.net import free_port
from tests.support.redisnode import RedisNode
from tests.support.tls import TestPKI, make_test_pki


@pytest.fixture
def tls_redis(
    redis_node_factory: Callable[..., RedisNode], tmp_path: Path
) -> Iterator[tuple[int, TestPKI]]:
    """A started node with TLS on the returned port."""
    pki = make_test_pki(tmp_path / "pki")
    tls_port = free_port()  # not restarted, so an ephemeral port will do
    node = redis_node_factory(
        extra_args=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(pki.server_cert),
            "--tls-key-file", str(pki.server_key),
            "--tls-ca-cert-file", str(pki.ca_cert),
            "--tls-auth-clients", "no",
        )
    )  # fmt: skip
    node.start()
    yield tls_port, pki


def test_rediss_round_trip_with_the_test_ca(tls_redis: tuple[int, Any]) -> None:
    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.ca_cert}"
    with Connection(url) as conn:
        queue = conn.SimpleQueue("over-tls")
        body = "x" * 100_000  # several TLS records
        queue.put(body)
        message = queue.get(timeout=5)
        assert message.payload == body
        message.ack()
        queue.close()


def test_an_unknown_ca_fails_verification_and_is_not_retried(tls_redis: tuple[int, Any]) -> None:
    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.other_ca_cert}"
    started = time.monotonic()
    with pytest.raises(TLSVerificationError, match="TLS verification failed"):
        Connection(url, connect_timeout=5).ensure_connection(max_retries=3)
    assert time.monotonic() - started < 1.0
