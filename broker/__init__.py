"""brokerpool: a kombu-style broker connection manager.

``from broker import Connection`` is the entry point; see the docs for the
rest. This module only re-exports.
"""

import logging

from broker.connection import Connection
from broker.errors import (
    AccessRefused,
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ChannelError,
    ChannelLimitExceeded,
    ConfigurationError,
    ConfirmTimeout,
    ConnectionBlockedTimeout,
    ConnectionLimitExceeded,
    ContentDisallowed,
    HeartbeatTimeout,
    IrrecoverableChannelError,
    IrrecoverableConnectionError,
    LimitExceeded,
    MessageNacked,
    MessageStateError,
    MessageUnroutable,
    NotFound,
    OperationalError,
    PreconditionFailed,
    PublishError,
    RecoverableChannelError,
    RecoverableConnectionError,
    SerializationError,
    TLSVerificationError,
    TransportNotFound,
)
from broker.retry import Constant, Exponential, FullJitter, Linear, RetryPolicy
from broker.url import BrokerURL, parse_url, parse_urls

__version__ = "0.1.0"

# A library never prints: records go nowhere until the application configures logging.
logging.getLogger("broker").addHandler(logging.NullHandler())

__all__ = [
    "AccessRefused",
    "AuthenticationError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerURL",
    "ChannelError",
    "ChannelLimitExceeded",
    "ConfigurationError",
    "ConfirmTimeout",
    "Connection",
    "ConnectionBlockedTimeout",
    "ConnectionLimitExceeded",
    "Constant",
    "ContentDisallowed",
    "Exponential",
    "FullJitter",
    "HeartbeatTimeout",
    "IrrecoverableChannelError",
    "IrrecoverableConnectionError",
    "LimitExceeded",
    "Linear",
    "MessageNacked",
    "MessageStateError",
    "MessageUnroutable",
    "NotFound",
    "OperationalError",
    "PreconditionFailed",
    "PublishError",
    "RecoverableChannelError",
    "RecoverableConnectionError",
    "RetryPolicy",
    "SerializationError",
    "TLSVerificationError",
    "TransportNotFound",
    "parse_url",
    "parse_urls",
]
