"""The whole brokerpool exception hierarchy.

Every error brokerpool raises derives from :class:`BrokerError`. Transports
translate their driver's exceptions into these classes at their boundary, so
code above ``transports/`` never needs to know py-amqp's classes.

The tree::

    BrokerError
    ├── ConfigurationError (also ValueError)
    │   ├── TransportNotFound
    │   ├── NotBoundError                an entity used before it was bound to a channel
    │   └── SerializerNotInstalled       no serializer registered under that name
    ├── BrokerConnectionError            a connection-level failure
    │   ├── RecoverableConnectionError   retrying (maybe elsewhere) can help
    │   │   ├── HeartbeatTimeout
    │   │   └── ConnectionBlockedTimeout
    │   └── IrrecoverableConnectionError retrying will not help
    │       ├── AuthenticationError
    │       ├── TLSVerificationError
    │       └── TLSHandshakeError
    ├── ChannelInUse (also RuntimeError) two threads used one channel at once
    ├── ChannelError                     a channel-level failure
    │   ├── RecoverableChannelError      e.g. 405 resource locked
    │   └── IrrecoverableChannelError    e.g. 404 not found, 406 precondition
    │       ├── NotFound
    │       ├── PreconditionFailed
    │       └── AccessRefused
    ├── OperationalError                 a recoverable failure outlasted its budget
    ├── LimitExceeded
    │   ├── ConnectionLimitExceeded
    │   └── ChannelLimitExceeded
    ├── PublishError
    │   ├── MessageNacked
    │   ├── MessageUnroutable
    │   └── ConfirmTimeout
    ├── MessageStateError
    └── SerializationError
        ├── EncodeError
        ├── DecodeError
        └── ContentDisallowed

Authentication and TLS failures sit under the *irrecoverable* branch on
purpose: a retry loop that catches the recoverable classes never hammers a
broker with a wrong password, a certificate it will never accept, or a TLS
hello on a port that does not speak TLS.

kombu's names are kept where kombu code catches them (``OperationalError``,
``LimitExceeded``, ``MessageStateError``, ``NotBoundError``,
``SerializerNotInstalled``, ``EncodeError``, ``DecodeError``,
``ContentDisallowed``), each placed in this tree so that an ``except`` clause
written for brokerpool's broader class still catches it: an unknown serializer
is still a :class:`ConfigurationError`, a body that does not decode still a
:class:`SerializationError`.
"""

from __future__ import annotations

__all__ = [
    "AccessRefused",
    "AuthenticationError",
    "BrokerConnectionError",
    "BrokerError",
    "ChannelError",
    "ChannelInUse",
    "ChannelLimitExceeded",
    "ConfigurationError",
    "ConfirmTimeout",
    "ConnectionBlockedTimeout",
    "ConnectionLimitExceeded",
    "ContentDisallowed",
    "DecodeError",
    "EncodeError",
    "HeartbeatTimeout",
    "IrrecoverableChannelError",
    "IrrecoverableConnectionError",
    "LimitExceeded",
    "MessageNacked",
    "MessageStateError",
    "MessageUnroutable",
    "NotBoundError",
    "NotFound",
    "OperationalError",
    "PreconditionFailed",
    "PublishError",
    "RecoverableChannelError",
    "RecoverableConnectionError",
    "SerializationError",
    "SerializerNotInstalled",
    "TLSHandshakeError",
    "TLSVerificationError",
    "TransportNotFound",
]


class BrokerError(Exception):
    """Root of every error raised by brokerpool."""


class ConfigurationError(BrokerError, ValueError):
    """Bad input: an unknown option, a malformed URL, a value out of range.

    The message names the offending key or URL part and what is allowed.
    """


class TransportNotFound(ConfigurationError):
    """No transport is registered under the requested name or URL scheme."""


class NotBoundError(ConfigurationError):
    """An exchange or queue was used before it was bound to a channel (kombu's name).

    Bind it first: ``queue(channel)`` returns a bound copy, or pass ``channel=``.
    """


class SerializerNotInstalled(ConfigurationError):
    """No serializer is registered under the requested name (kombu's name)."""


# -- connection level ---------------------------------------------------------


class BrokerConnectionError(BrokerError):
    """A failure of the connection to the broker (socket, protocol, login).

    Attributes:
        reply_code: the AMQP reply code when the broker sent one, else ``None``.
    """

    def __init__(self, message: str = "", *, reply_code: int | None = None) -> None:
        super().__init__(message)
        self.reply_code = reply_code


class RecoverableConnectionError(BrokerConnectionError):
    """The connection failed in a way a reconnect (maybe to another host) can fix.

    Examples: refused, reset or closed sockets, connect timeouts, missed
    heartbeats, ``connection-forced`` from a broker that is shutting down.
    """


class HeartbeatTimeout(RecoverableConnectionError):
    """The peer stayed silent for more than two heartbeat intervals."""


class ConnectionBlockedTimeout(RecoverableConnectionError):
    """The broker kept the connection blocked longer than ``blocked_connection_timeout``."""


class IrrecoverableConnectionError(BrokerConnectionError):
    """The connection failed in a way that retrying the same request will not fix.

    Examples: a protocol error, a virtual host the user may not access.
    """


class AuthenticationError(IrrecoverableConnectionError):
    """The broker refused the credentials. Never retried."""


class TLSVerificationError(IrrecoverableConnectionError):
    """The TLS handshake failed: unknown CA, wrong hostname, bad certificate."""


class TLSHandshakeError(IrrecoverableConnectionError):
    """A TLS handshake that cannot succeed with these settings. Never retried.

    A configuration error found on connecting: most often TLS aimed at a
    port that does not speak it (``amqps://`` or ``ssl=True`` on RabbitMQ's
    plain port 5672), else no TLS version or cipher shared with the server,
    or a client certificate the server requires or refuses. The message
    names the likely cause; the driver's error is ``__cause__``.
    """


# -- channel level ------------------------------------------------------------


class ChannelError(BrokerError):
    """A failure confined to one channel; the connection itself is still usable.

    Attributes:
        reply_code: the AMQP reply code when the broker sent one, else ``None``.
    """

    def __init__(self, message: str = "", *, reply_code: int | None = None) -> None:
        super().__init__(message)
        self.reply_code = reply_code


class ChannelInUse(BrokerError, RuntimeError):
    """Two threads used one channel at once; nothing was sent for the second.

    A connection may be shared by threads, but each channel belongs to one
    thread at a time: give every thread a channel of its own
    (``conn.channel()``, a ``ChannelPool``, ``pools.producers``). Acking,
    rejecting and requeueing a delivery are allowed from any thread.
    """


class RecoverableChannelError(ChannelError):
    """A channel error that may go away when retried on a fresh channel."""


class IrrecoverableChannelError(ChannelError):
    """A channel error that retrying the same call will not fix."""


class NotFound(IrrecoverableChannelError):
    """The exchange or queue does not exist (AMQP 404)."""


class PreconditionFailed(IrrecoverableChannelError):
    """An entity exists with different arguments, or a similar clash (AMQP 406)."""


class AccessRefused(IrrecoverableChannelError):
    """The user may not access the entity, or it is exclusive to another connection (AMQP 403)."""


# -- retry budget -------------------------------------------------------------


class OperationalError(BrokerError):
    """A recoverable failure that outlasted its retry budget.

    The last underlying error is available as ``__cause__``.
    """


# -- pools --------------------------------------------------------------------


class LimitExceeded(BrokerError):
    """A pool is at its limit and no item became free in time."""


class ConnectionLimitExceeded(LimitExceeded):
    """A connection pool is at its limit."""


class ChannelLimitExceeded(LimitExceeded):
    """A channel pool is at its limit."""


# -- publishing ---------------------------------------------------------------


class PublishError(BrokerError):
    """A published message was not accepted by the broker."""


class MessageNacked(PublishError):
    """The broker negatively acknowledged a published message."""


class MessageUnroutable(PublishError):
    """A ``mandatory`` message matched no queue and was returned."""


class ConfirmTimeout(PublishError):
    """The broker did not confirm published messages within the deadline.

    Whether those messages were stored is unknown: republish them if
    duplicates are acceptable.
    """


# -- messages -----------------------------------------------------------------


class MessageStateError(BrokerError):
    """The message was already acknowledged, rejected or requeued."""


class SerializationError(BrokerError):
    """A body could not be encoded or decoded."""


class EncodeError(SerializationError):
    """The serializer could not encode a body (kombu's name)."""


class DecodeError(SerializationError):
    """A received body did not decode with the serializer its content type names."""


class ContentDisallowed(SerializationError):
    """The content type is not in the consumer's ``accept`` list."""
