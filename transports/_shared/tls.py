"""TLS settings shared by the socket transports: ``ssl=`` option → :class:`ssl.SSLContext`.

Neither driver takes the option as brokerpool accepts it: py-amqp 5.4 cannot
take an :class:`ssl.SSLContext` (its ``ssl=`` is a bool or a dict of
``wrap_socket``/``create_default_context`` arguments), and redis-py has its
own keyword set. So both transports build a context here and wrap their
sockets with it (:class:`transports.amqp.driver.TLSSocketTransport`, and the
redis-py connection class of :mod:`transports.redis.driver`). Verification
is on unless the caller explicitly turns it off.

:func:`hopeless_handshake` tells both transports which failed handshakes
can never succeed with the same settings (TLS to a port that does not speak
it, no version or cipher in common, a refused client certificate): those
raise :class:`~broker.errors.TLSHandshakeError` and are not retried.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import ConfigurationError, TLSHandshakeError
from transports.base import SSLOption

__all__ = ["SSL_DICT_KEYS", "TLSSettings", "hopeless_handshake", "tls_settings"]

#: The keys accepted when ``ssl=`` is a dict.
SSL_DICT_KEYS = frozenset(
    {"ca_certs", "certfile", "keyfile", "cert_reqs", "check_hostname", "server_hostname"}
)


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """A ready context plus the name to send (SNI) and to check the certificate against."""

    context: ssl.SSLContext
    server_hostname: str

    def __repr__(self) -> str:
        ctx = self.context
        return (
            f"TLSSettings(server_hostname={self.server_hostname!r}, "
            f"verify_mode={ctx.verify_mode.name}, check_hostname={ctx.check_hostname})"
        )


def tls_settings(option: SSLOption, hostname: str) -> TLSSettings | None:
    """Turn the ``ssl=`` option into TLS settings, or ``None`` when TLS is off.

    Args:
        option: ``False`` (off), ``True`` (verify against the system CAs and
            check the host name), a dict with keys from :data:`SSL_DICT_KEYS`,
            or an :class:`ssl.SSLContext` used as is.
        hostname: the broker host; the default ``server_hostname``.

    Raises:
        ConfigurationError: an unknown key, a value of the wrong type, an
            unreadable certificate file, or contradictory settings.
    """
    if option is False or option is None:
        return None
    if option is True:
        return TLSSettings(ssl.create_default_context(), hostname)
    if isinstance(option, ssl.SSLContext):
        return TLSSettings(option, hostname)
    if isinstance(option, Mapping):
        return _from_mapping(option, hostname)
    raise ConfigurationError(
        f"ssl={option!r} is not supported: use False, True, a dict with keys "
        f"{', '.join(sorted(SSL_DICT_KEYS))}, or an ssl.SSLContext"
    )


def _from_mapping(opts: Mapping[str, Any], hostname: str) -> TLSSettings:
    unknown = sorted(set(opts) - SSL_DICT_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown ssl option(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(SSL_DICT_KEYS))}"
        )
    ca_certs = _path(opts, "ca_certs")
    certfile = _path(opts, "certfile")
    keyfile = _path(opts, "keyfile")
    server_hostname = opts.get("server_hostname") or hostname
    if not isinstance(server_hostname, str):
        raise ConfigurationError(
            f"ssl option 'server_hostname' must be a string, got {server_hostname!r}"
        )
    cert_reqs = _cert_reqs(opts.get("cert_reqs", ssl.CERT_REQUIRED))
    check_hostname = opts.get("check_hostname", cert_reqs != ssl.CERT_NONE)
    if not isinstance(check_hostname, bool):
        raise ConfigurationError(
            f"ssl option 'check_hostname' must be True or False, got {check_hostname!r}"
        )
    if check_hostname and cert_reqs == ssl.CERT_NONE:
        raise ConfigurationError(
            "ssl option 'check_hostname'=True needs certificate verification: "
            "cert_reqs=ssl.CERT_NONE turns it off"
        )
    if keyfile and not certfile:
        raise ConfigurationError("ssl option 'keyfile' needs 'certfile' (the client certificate)")

    try:
        # With a cafile only that CA is trusted; without one, the system CAs.
        context = ssl.create_default_context(cafile=ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"ssl option 'ca_certs'={ca_certs!r} cannot be loaded: {exc}"
        ) from exc
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"ssl options 'certfile'={certfile!r}/'keyfile'={keyfile!r} cannot be loaded: {exc}"
            ) from exc
    # check_hostname must be switched off before verify_mode may drop to CERT_NONE.
    context.check_hostname = check_hostname
    context.verify_mode = cert_reqs
    return TLSSettings(context, server_hostname)


def _path(opts: Mapping[str, Any], key: str) -> str | None:
    value = opts.get(key)
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"ssl option {key!r} must be a file path, got {value!r}")
    return value


def _cert_reqs(value: Any) -> ssl.VerifyMode:
    try:
        return ssl.VerifyMode(value)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"ssl option 'cert_reqs' must be ssl.CERT_NONE, ssl.CERT_OPTIONAL or "
            f"ssl.CERT_REQUIRED, got {value!r}"
        ) from None


_NOT_TLS = (
    "the server did not answer in TLS: is this its TLS port? amqps://, rediss:// and "
    "ssl=True need one (RabbitMQ's is usually 5671); a plain port such as 5672 never "
    "completes a TLS handshake"
)
_NO_VERSION = "the client and the server share no TLS version (see the ssl context's versions)"
_REFUSED = (
    "the server refused the handshake: no cipher in common, or it requires a client "
    "certificate (ssl options certfile and keyfile)"
)
_CLIENT_CERT = "the server requires a client certificate (ssl options certfile and keyfile)"
_BAD_CLIENT_CERT = "the server does not accept the client certificate (ssl option certfile)"

#: OpenSSL reasons after which the same settings fail every time, and the likely cause.
#: An EOF or a reset is not here: a server that is going down looks the same.
_HOPELESS: Mapping[str, str] = {
    "WRONG_VERSION_NUMBER": _NOT_TLS,
    "UNKNOWN_PROTOCOL": _NOT_TLS,  # what OpenSSL 1.x says for the same
    "TLSV1_ALERT_PROTOCOL_VERSION": _NO_VERSION,
    "UNSUPPORTED_PROTOCOL": _NO_VERSION,
    "NO_PROTOCOLS_AVAILABLE": _NO_VERSION,
    "SSLV3_ALERT_HANDSHAKE_FAILURE": _REFUSED,
    "NO_SHARED_CIPHER": _REFUSED,
    "NO_CIPHERS_AVAILABLE": _REFUSED,
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": _REFUSED,  # RabbitMQ's (Erlang's) alert for the same
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": _CLIENT_CERT,
    "SSLV3_ALERT_BAD_CERTIFICATE": _BAD_CLIENT_CERT,
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": _BAD_CLIENT_CERT,
    "TLSV1_ALERT_UNKNOWN_CA": _BAD_CLIENT_CERT,
}


def hopeless_handshake(exc: BaseException, where: str) -> TLSHandshakeError | None:
    """The error to raise when ``exc`` is a TLS failure that retrying cannot fix, else ``None``.

    Args:
        exc: what the TLS layer raised (an :class:`ssl.SSLError`; anything
            else gives ``None``). Certificate verification failures are
            :class:`~broker.errors.TLSVerificationError`'s, not this one's.
        where: the broker, password masked, named in the message.

    Returns:
        A :class:`~broker.errors.TLSHandshakeError` naming the likely cause
        (raise it ``from exc``), or ``None`` when a later attempt may succeed.
    """
    if not isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.SSLCertVerificationError):
        return None
    # Set by the ssl module's C layer; an SSLError raised from Python code has none.
    reason = getattr(exc, "reason", None) or ""
    cause = _HOPELESS.get(reason)
    if cause is None:
        return None
    return TLSHandshakeError(f"TLS handshake with {where} cannot succeed ({reason}): {cause}")
