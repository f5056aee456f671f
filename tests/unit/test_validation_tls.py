"""Which failed TLS handshakes are configuration errors (never retried) and which may pass later.

The classification is :func:`transports._shared.tls.hopeless_handshake`,
used by the AMQP and Redis transports alike; the real brokers' side is in
``tests/integration/test_tls.py`` (amqps:// to RabbitMQ's plain port) and
``tests/integration/test_redis_transport.py`` (rediss:// to a plain-text port).
"""

from __future__ import annotations

import socket
import ssl

import pytest

from broker.errors import (
    IrrecoverableConnectionError,
    RecoverableConnectionError,
    TLSHandshakeError,
)
from broker.retry.policy import RetryPolicy
from transports._shared.tls import hopeless_handshake

WHERE = "amqps://guest:**@127.0.0.1:5672//"


def ssl_error(reason: str) -> ssl.SSLError:
    """An SSLError as OpenSSL reports it (the C code sets ``reason`` the same way)."""
    exc = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()} (_ssl.c:1006)")
    exc.reason = reason
    exc.library = "SSL"
    return exc


def plain_text_handshake_error(reply: bytes) -> ssl.SSLError:
    """What a real TLS client raises when the peer answers its hello in plain text."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(reply)
        ours.settimeout(5)
        context = ssl.create_default_context()
        with pytest.raises(ssl.SSLError) as info:
            context.wrap_socket(ours, server_hostname="localhost")
    return info.value


@pytest.mark.parametrize(
    "reply",
    [b"AMQP\x00\x00\x09\x01", b"-ERR unknown command\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"],
    ids=["amqp-protocol-header", "redis-error", "http"],
)
def test_a_peer_answering_in_plain_text_is_a_tls_handshake_error(reply: bytes) -> None:
    cause = plain_text_handshake_error(reply)
    error = hopeless_handshake(cause, WHERE)
    assert isinstance(error, TLSHandshakeError)
    assert isinstance(error, IrrecoverableConnectionError)
    assert not isinstance(error, RecoverableConnectionError)
    message = str(error)
    assert message.startswith(f"TLS handshake with {WHERE} cannot succeed (WRONG_VERSION_NUMBER)")
    assert "is this its TLS port?" in message


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("WRONG_VERSION_NUMBER", "the server did not answer in TLS"),
        ("UNKNOWN_PROTOCOL", "the server did not answer in TLS"),
        ("TLSV1_ALERT_PROTOCOL_VERSION", "share no TLS version"),
        ("UNSUPPORTED_PROTOCOL", "share no TLS version"),
        ("NO_PROTOCOLS_AVAILABLE", "share no TLS version"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", "no cipher in common"),
        ("NO_SHARED_CIPHER", "no cipher in common"),
        ("TLSV1_ALERT_INSUFFICIENT_SECURITY", "no cipher in common"),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "requires a client certificate"),
        ("SSLV3_ALERT_BAD_CERTIFICATE", "does not accept the client certificate"),
        ("TLSV1_ALERT_UNKNOWN_CA", "does not accept the client certificate"),
    ],
)
def test_settings_that_can_never_work_name_the_likely_cause(reason: str, cause: str) -> None:
    error = hopeless_handshake(ssl_error(reason), WHERE)
    assert isinstance(error, TLSHandshakeError)
    assert f"({reason}): " in str(error) and cause in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        ssl_error("UNEXPECTED_EOF_WHILE_READING"),  # a server going down looks the same
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),  # TLSVerificationError's
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
    ],
    ids=repr,
)
def test_failures_a_retry_may_fix_are_left_alone(exc: BaseException) -> None:
    assert hopeless_handshake(exc, WHERE) is None


def test_no_retry_policy_retries_it() -> None:
    error = hopeless_handshake(ssl_error("WRONG_VERSION_NUMBER"), WHERE)
    assert error is not None
    assert not RetryPolicy().retryable(error)
    # Not even a policy told to retry every connection error.
    assert not RetryPolicy(on=(IrrecoverableConnectionError,)).retryable(error)
