"""amqps:// for asyncio against the TLS node of ``tests/integration/test_tls.py`` (same fixture)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from broker.aio import Connection
from broker.errors import IrrecoverableConnectionError, TLSVerificationError
from tests.integration.test_tls import TLS_PORT, TLSBroker, tls_broker
from transports import resolve_async
from transports.base import ConnectionParams

pytestmark = [pytest.mark.asyncio, pytest.mark.extra_nodes]
__all__ = ["tls_broker"]  # the TLS node fixture, used here


def _params(broker: TLSBroker, **overrides: Any) -> ConnectionParams:
    fields: dict[str, Any] = {
        "hostname": "127.0.0.1", "port": TLS_PORT, "userid": "guest", "password": "guest",
        "ssl": {"ca_certs": broker.ca}, "connect_timeout": 5.0,
    }  # fmt: skip
    fields.update(overrides)
    return ConnectionParams(**fields)


async def test_amqps_with_the_ca_carries_large_messages(
    tls_broker: TLSBroker, unique_name: str
) -> None:
    url = f"amqps://guest:guest@127.0.0.1:{TLS_PORT}//"
    async with Connection(url, ssl={"ca_certs": tls_broker.ca}, heartbeat=5) as conn:
        sq = conn.SimpleQueue(unique_name, queue_opts={"durable": False, "auto_delete": True})
        body = b"over tls " * 50_000  # many TLS records, several frames
        await sq.put(body)
        message = await sq.get(timeout=10)
        assert message.body == body
        await message.ack()
        await sq.close()


async def test_a_wrong_ca_raises_tls_verification_error_at_the_handshake(
    tls_broker: TLSBroker,
) -> None:
    started = time.monotonic()
    with pytest.raises(TLSVerificationError) as caught:
        await resolve_async("amqps")().connect(
            _params(tls_broker, ssl={"ca_certs": str(tls_broker.pki.other_ca_cert)},
                    connect_timeout=30)
        )  # fmt: skip
    assert time.monotonic() - started < 10  # not at the connect timeout
    assert isinstance(caught.value, IrrecoverableConnectionError)
    assert "amqps://guest:**@127.0.0.1:5691//" in str(caught.value)


async def test_a_hostname_mismatch_raises_tls_verification_error(tls_broker: TLSBroker) -> None:
    with pytest.raises(TLSVerificationError, match=r"wrong\.example"):
        await resolve_async("amqps")().connect(
            _params(tls_broker, ssl={"ca_certs": tls_broker.ca, "server_hostname": "wrong.example"})
        )
