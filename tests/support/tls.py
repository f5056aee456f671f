"""Throw-away TLS material for tests: a CA, a server certificate, and a stranger CA.

Made with the ``cryptography`` package in a directory the caller owns (a
pytest ``tmp_path``), valid for one day, EC P-256 keys (fast to generate).

Usage::

    pki = make_test_pki(tmp_path)          # TestPKI with file paths
    pki.ca_cert                            # trust this to verify the server
    pki.server_cert, pki.server_key        # for the broker's TLS listener
    pki.other_ca_cert                      # a CA that signed nothing: verification fails
    rabbitmq_tls_config(pki, port=5691)    # rabbitmq.conf lines for a TLS listener
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TestPKI", "make_test_pki", "rabbitmq_tls_config"]

#: The names the server certificate is valid for.
SERVER_DNS_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class TestPKI:
    """Paths of the PEM files written by :func:`make_test_pki`."""

    __test__ = False  # not a test class, despite the name

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path


def make_test_pki(directory: Path) -> TestPKI:
    """Write a CA, a server certificate for localhost/127.0.0.1, and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("brokerpool test CA")
    server_key, server_cert = _make_server_cert(ca_key, ca_cert, SERVER_DNS_NAMES, SERVER_IPS)
    _other_key, other_ca = _make_ca("brokerpool stranger CA")

    pki = TestPKI(
        directory=directory,
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        other_ca_cert=directory / "other-ca.pem",
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pki.other_ca_cert.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    return pki


def rabbitmq_tls_config(pki: TestPKI, port: int) -> list[str]:
    """``rabbitmq.conf`` lines for a TLS listener on ``port`` that asks no client certificate."""
    return [
        f"listeners.ssl.default = {port}",
        f"ssl_options.cacertfile = {pki.ca_cert}",
        f"ssl_options.certfile = {pki.server_cert}",
        f"ssl_options.keyfile = {pki.server_key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ]


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    # A little in the past: tolerate clock skew between us and the broker.
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    dns_names: Sequence[str],
    ips: Sequence[str],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity()
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
