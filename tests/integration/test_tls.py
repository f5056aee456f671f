"""The AMQP transport over TLS, against an extra RabbitMQ node with a TLS listener.

One node per module (it takes 5-8 s to boot): plain AMQP on 5690, TLS on
5691, with a throw-away CA and a server certificate for localhost/127.0.0.1
(tests/support/tls.py). The node also serves the tests that need broker
control the shared node must not be put through: the memory alarm that
blocks publishers, and ``rabbitmqctl list_connections``.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from broker.errors import (
    IrrecoverableConnectionError,
    RecoverableConnectionError,
    TLSHandshakeError,
    TLSVerificationError,
)
from tests.support.rabbitnode import RabbitNode, require_extra_nodes
from tests.support.tls import TestPKI, make_test_pki, rabbitmq_tls_config
from tests.support.wait import drain_until, wait_until
from transports.amqp.transport import AmqpConnection, Transport
from transports.base import ConnectionParams

pytestmark = pytest.mark.extra_nodes

AMQP_PORT = 5690
TLS_PORT = 5691
EPMD_PORT = 4371  # a private epmd, stopped with the node (4370 is shared by other suites)

Connect = Callable[..., AmqpConnection]


@dataclass(frozen=True)
class TLSBroker:
    node: RabbitNode
    pki: TestPKI

    @property
    def ca(self) -> str:
        return str(self.pki.ca_cert)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBroker]:
    """A RabbitMQ node with a TLS listener on 127.0.0.1:5691, stopped after the module."""
    require_extra_nodes()
    pki = make_test_pki(tmp_path_factory.mktemp("pki"))
    node = RabbitNode(
        port=AMQP_PORT, config_lines=rabbitmq_tls_config(pki, TLS_PORT), epmd_port=EPMD_PORT
    )
    try:
        node.start()
        wait_until(
            lambda: _accepts(TLS_PORT), 15, interval=0.1, message="the TLS listener did not open"
        )
        yield TLSBroker(node, pki)
    finally:
        node.close()  # stops every process it started, by pid


@pytest.fixture
def connect(tls_broker: TLSBroker) -> Iterator[Connect]:
    """Open connections to the TLS listener (trusting the test CA unless told); torn down after."""
    opened: list[AmqpConnection] = []

    def make(
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> AmqpConnection:
        fields: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": TLS_PORT,
            "userid": "guest",
            "password": "guest",
            "ssl": {"ca_certs": tls_broker.ca},
            "connect_timeout": 5.0,
        }
        fields.update(overrides)
        conn = Transport().connect(
            ConnectionParams(**fields), on_blocked=on_blocked, on_unblocked=on_unblocked
        )
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.teardown()


def round_trip(conn: AmqpConnection, queue: str) -> bytes:
    with conn.channel() as channel:
        channel.queue_declare(queue=queue, auto_delete=True)
        body = b"over tls " * 5000  # several TLS records
        channel.basic_publish(channel.prepare_message(body), routing_key=queue)
        got = channel.basic_get(queue=queue, no_ack=True)
        channel.queue_delete(queue=queue)
    assert got is not None
    return bytes(got.body)


# -- verification succeeds ------------------------------------------------------------


def test_amqps_with_the_ca_connects(connect: Connect, unique_name: str) -> None:
    conn = connect()
    assert repr(conn).startswith("<AmqpConnection amqps://guest:**@127.0.0.1:5691// open")
    assert conn.verify()  # peeks below the TLS layer without consuming anything
    assert round_trip(conn, unique_name) == b"over tls " * 5000


def test_the_certificate_matches_the_dns_name_too(connect: Connect) -> None:
    assert connect(hostname="localhost").is_open


def test_an_ssl_context_is_used_as_is(
    connect: Connect, tls_broker: TLSBroker, unique_name: str
) -> None:
    context = ssl.create_default_context(cafile=tls_broker.ca)
    conn = connect(ssl=context)
    assert round_trip(conn, unique_name).startswith(b"over tls")

    stranger = ssl.create_default_context(cafile=str(tls_broker.pki.other_ca_cert))
    with pytest.raises(TLSVerificationError):
        connect(ssl=stranger)  # proves the context is not replaced by defaults


def test_verification_can_be_turned_off_explicitly(connect: Connect) -> None:
    assert connect(ssl={"cert_reqs": ssl.CERT_NONE}).is_open


def test_reads_are_not_cut_short_by_the_handshake_timeout(connect: Connect) -> None:
    conn = connect(heartbeat=1, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=1.5)
    # Waited for its own timeout, not the 0.5 s of the handshake (the upper
    # bound only catches a read that ignores its timeout altogether).
    assert 1.35 <= time.monotonic() - started < 10
    assert conn.is_open


# -- verification fails fast and is not retryable ---------------------------------------


def test_wrong_ca_raises_tls_verification_error_quickly(
    connect: Connect, tls_broker: TLSBroker
) -> None:
    started = time.monotonic()
    with pytest.raises(TLSVerificationError) as caught:
        connect(ssl={"ca_certs": str(tls_broker.pki.other_ca_cert)}, connect_timeout=30)
    assert time.monotonic() - started < 10  # at the handshake, not at the connect timeout
    err = caught.value
    assert isinstance(err, IrrecoverableConnectionError)
    assert not isinstance(err, RecoverableConnectionError)
    assert "amqps://guest:**@127.0.0.1:5691//" in str(err)
    assert "certificate" in str(err)


def test_system_cas_do_not_trust_the_test_ca(connect: Connect) -> None:
    with pytest.raises(TLSVerificationError):
        connect(ssl=True)  # True verifies against the system CAs, and must


def test_hostname_mismatch_raises_tls_verification_error(
    connect: Connect, tls_broker: TLSBroker
) -> None:
    with pytest.raises(TLSVerificationError, match=r"wrong\.example"):
        connect(ssl={"ca_certs": tls_broker.ca, "server_hostname": "wrong.example"})


def test_plain_client_on_the_tls_port_fails_fast(connect: Connect) -> None:
    started = time.monotonic()
    with pytest.raises(RecoverableConnectionError):
        connect(ssl=False, connect_timeout=30)
    assert time.monotonic() - started < 10  # the broker hangs up; no connect timeout


def test_tls_client_on_the_plain_port_fails_fast(connect: Connect) -> None:
    # The broker answers the TLS hello with its AMQP protocol header: a TLS
    # handshake there can never work, so it is a configuration error.
    started = time.monotonic()
    with pytest.raises(TLSHandshakeError) as caught:
        connect(port=AMQP_PORT, connect_timeout=30)
    assert time.monotonic() - started < 10  # the broker hangs up; no connect timeout
    err = caught.value
    assert isinstance(err, IrrecoverableConnectionError)
    assert not isinstance(err, RecoverableConnectionError)
    message = str(err)
    assert message.startswith(
        f"TLS handshake with amqps://guest:**@127.0.0.1:{AMQP_PORT}// cannot succeed "
        "(WRONG_VERSION_NUMBER): the server did not answer in TLS: is this its TLS port?"
    )


def test_amqps_to_the_plain_port_is_refused_at_once_not_retried(tls_broker: TLSBroker) -> None:
    from broker import Connection

    retried: list[BaseException] = []
    conn = Connection(
        f"amqps://guest:guest@127.0.0.1:{AMQP_PORT}//", ssl={"ca_certs": tls_broker.ca}
    )
    with pytest.raises(TLSHandshakeError, match="is this its TLS port"):
        conn.ensure_connection(max_retries=3, errback=lambda exc, interval: retried.append(exc))
    assert retried == []  # one attempt: the error left the retry loop as it was
    assert not conn.connected


def test_no_cipher_in_common_is_a_handshake_error(connect: Connect, tls_broker: TLSBroker) -> None:
    context = ssl.create_default_context(cafile=tls_broker.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")  # the broker's key is EC: unusable
    with pytest.raises(TLSHandshakeError, match="no cipher in common"):
        connect(ssl=context)


# -- closing over TLS ---------------------------------------------------------------------


def test_close_and_teardown_over_tls(connect: Connect) -> None:
    conn = connect()
    started = time.monotonic()
    conn.close(timeout=1)
    assert time.monotonic() - started < 5  # a hang guard: close-ok arrives at once
    conn.teardown()
    assert not conn.is_open and not conn.verify()


# -- broker-side features that need a node of our own --------------------------------------


def test_connection_name_and_product_reach_the_broker(
    connect: Connect, tls_broker: TLSBroker, unique_name: str
) -> None:
    connect(connection_name=unique_name)
    listing = tls_broker.node.ctl("list_connections", "ssl", "client_properties")
    line = next(row for row in listing.splitlines() if unique_name in row)
    assert line.startswith("true")  # the broker sees a TLS connection
    assert "brokerpool" in line


def test_blocked_and_unblocked_are_tracked(
    connect: Connect, tls_broker: TLSBroker, unique_name: str
) -> None:
    events: list[str] = []
    conn = connect(
        on_blocked=lambda reason: events.append("blocked"),
        on_unblocked=lambda: events.append("unblocked"),
    )
    channel = conn.channel()
    channel.queue_declare(queue=unique_name, auto_delete=True)
    node = tls_broker.node
    node.set_memory_alarm(True)
    try:
        # Only a connection that publishes is blocked.
        channel.basic_publish(channel.prepare_message(b"x"), routing_key=unique_name)
        drain_until(conn, lambda: "blocked" in events, 15)
        assert conn.is_blocked
        assert "blocked" in repr(conn)
    finally:
        node.set_memory_alarm(False)
    drain_until(conn, lambda: "unblocked" in events, 15)
    assert not conn.is_blocked
    assert events == ["blocked", "unblocked"]


# -- through the Connection façade ------------------------------------------------------


def test_facade_amqps_url_with_ca_option_verifies(tls_broker: TLSBroker) -> None:
    from broker import Connection

    url = f"amqps://guest:guest@localhost:{TLS_PORT}//?ssl_ca_certs={tls_broker.ca}"
    with Connection(url) as conn:
        assert conn.as_uri().startswith(f"amqps://guest:**@localhost:{TLS_PORT}/")
        conn.default_channel.queue_declare(queue="", exclusive=True)


def test_heartbeat_writes_during_tls_reads_neither_corrupt_nor_stall(
    tls_broker: TLSBroker, unique_name: str
) -> None:
    """Heartbeat writes from other threads while the owner reads large messages over TLS.

    Reads and writes share a lock over TLS (OpenSSL does not allow one
    connection to be read and written at once); this checks that the lock
    neither stalls the owner nor lets a frame be damaged.
    """
    import threading

    from broker import Connection

    conn = Connection(
        f"amqps://guest:guest@127.0.0.1:{TLS_PORT}//", ssl={"ca_certs": tls_broker.ca}, heartbeat=1
    )
    channel = conn.channel()
    channel.queue_declare(queue=unique_name, auto_delete=True)
    body = b"x" * 40_000  # several TLS records per message
    for _ in range(300):
        channel.basic_publish(channel.prepare_message(body), routing_key=unique_name)
    stop = threading.Event()
    transport_conn = conn.transport_connection
    assert transport_conn is not None

    def hammer() -> None:
        while not stop.is_set():
            transport_conn.send_heartbeat()

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    received: list[bytes] = []
    channel.basic_consume(
        queue=unique_name, no_ack=True, callback=lambda m: received.append(m.body)
    )
    try:
        deadline = time.monotonic() + 30
        while len(received) < 300 and time.monotonic() < deadline:
            conn.drain_events(timeout=5)
    finally:
        stop.set()
        thread.join(5)
    assert len(received) == 300 and all(b == body for b in received)
    conn.close()


def test_a_pipelined_batch_over_tls_with_heartbeats_hammering(
    tls_broker: TLSBroker, unique_name: str
) -> None:
    """Coalesced writes of a confirms() batch share the TLS stream with the heartbeat thread."""
    import threading

    from broker import Connection

    conn = Connection(
        f"amqps://guest:guest@127.0.0.1:{TLS_PORT}//", ssl={"ca_certs": tls_broker.ca}, heartbeat=1
    )
    conn.default_channel.queue_declare(queue=unique_name, auto_delete=False)
    transport_conn = conn.transport_connection
    assert transport_conn is not None
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            transport_conn.send_heartbeat()

    thread = threading.Thread(target=hammer, daemon=True)
    producer = conn.Producer(routing_key=unique_name)
    body = b"y" * 3000
    thread.start()
    try:
        with producer.confirms(timeout=30) as batch:
            for _ in range(2000):
                producer.publish(body)
    finally:
        stop.set()
        thread.join(5)
    assert batch.confirmed == 2000 and conn.connected
    got = conn.default_channel.basic_get(queue=unique_name, no_ack=True)
    assert got is not None and got.body == body
    conn.default_channel.queue_delete(queue=unique_name)
    conn.close()


def test_a_held_publish_over_tls_leaves_without_a_call(
    tls_broker: TLSBroker, unique_name: str
) -> None:
    """The idle flusher sends a batch's held frames over TLS, under the transport's I/O lock."""
    from broker import Connection

    url = f"amqps://guest:guest@127.0.0.1:{TLS_PORT}//"
    tls = {"ca_certs": tls_broker.ca}
    with Connection(url, ssl=tls, heartbeat=0) as conn, Connection(url, ssl=tls) as observer:
        channel = observer.default_channel
        channel.queue_declare(queue=unique_name, auto_delete=False)
        producer = conn.Producer(routing_key=unique_name)
        with producer.confirms(timeout=30) as batch:
            producer.publish(b"over tls")
            wait_until(
                lambda: channel.queue_declare(queue=unique_name, passive=True).message_count == 1,
                message="the held publish never left while the owner was away",
            )
        assert batch.confirmed == 1 and conn.connected
        channel.queue_delete(queue=unique_name)
