"""The AMQP 0-9-1 transport, built on py-amqp (``amqp://``, ``pyamqp://``, ``amqps://``).

:class:`Transport` holds what the registry and :class:`broker.Connection` ask of
the transport (ports, capabilities) and opens an
:class:`~transports.amqp.connection.AmqpConnection`; its channels are
:class:`~transports.amqp.channel.AmqpChannel`. py-amqp exceptions never leave
this package: they are translated by :mod:`transports.amqp.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import amqp

from transports import base
from transports.amqp.connection import AmqpConnection

__all__ = ["AmqpConnection", "Transport"]


class Transport(base.Transport):
    """The py-amqp transport class (registered as ``amqp``, ``pyamqp`` and ``amqps``)."""

    name: ClassVar[str] = "amqp"
    default_port: ClassVar[int | None] = 5672
    default_ssl_port: ClassVar[int | None] = 5671
    capabilities: ClassVar[base.Capabilities] = base.Capabilities(
        heartbeats=True,
        publisher_confirms=True,
        exchange_types=frozenset({"direct", "topic", "fanout", "headers"}),
        ssl=True,
    )

    def driver_version(self) -> str:
        """py-amqp's version."""
        return str(amqp.__version__)

    def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> AmqpConnection:
        """Open a connection; see :meth:`transports.base.Transport.connect`.

        Raises:
            broker.errors.ConfigurationError: invalid parameters (no I/O done).
            broker.errors.AuthenticationError: the broker refused the login.
            broker.errors.TLSVerificationError: the broker's certificate was rejected.
            broker.errors.TLSHandshakeError: TLS cannot work (e.g. a plain AMQP port).
            broker.errors.RecoverableConnectionError: refused, reset, timed out.
        """
        conn = AmqpConnection(params, on_blocked=on_blocked, on_unblocked=on_unblocked)
        conn.open()
        return conn
