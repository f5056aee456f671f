"""brokerpool: a kombu-style broker connection manager.

``from broker import Connection`` is the entry point. This module only
re-exports: the error classes eagerly (they are tiny and every package needs
them), everything else on first access, so that ``import broker.errors`` --
what ``transports`` and ``pools`` do -- does not load the façade.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from broker.errors import (
    AccessRefused,
    AuthenticationError,
    BrokerConnectionError,
    BrokerError,
    ChannelError,
    ChannelInUse,
    ChannelLimitExceeded,
    ConfigurationError,
    ConfirmTimeout,
    ConnectionBlockedTimeout,
    ConnectionLimitExceeded,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    HeartbeatTimeout,
    IrrecoverableChannelError,
    IrrecoverableConnectionError,
    LimitExceeded,
    MessageNacked,
    MessageStateError,
    MessageUnroutable,
    NotBoundError,
    NotFound,
    OperationalError,
    PreconditionFailed,
    PublishError,
    RecoverableChannelError,
    RecoverableConnectionError,
    SerializationError,
    SerializerNotInstalled,
    TLSHandshakeError,
    TLSVerificationError,
    TransportNotFound,
)

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from broker.entities.queue import Exchange, Queue, binding
    from broker.messaging.common import eventloop, uuid
    from broker.messaging.consumer_loop import ConsumerLoop
    from broker.messaging.message import Message
    from broker.messaging.mixins import ConsumerMixin, ConsumerProducerMixin
    from broker.messaging.producer import Consumer, Producer
    from broker.messaging.serialization import (
        disable_insecure_serializers,
        enable_insecure_serializers,
    )
    from broker.messaging.simple import SimpleBuffer, SimpleQueue
    from broker.retry.policy import Constant, Exponential, FullJitter, Linear, RetryPolicy
    from broker.url.parse import BrokerURL, parse_url, parse_urls
    from pools import ChannelPool, ConnectionPool, ProducerPool

__version__ = "0.1.0"

# A library never prints: records go nowhere until the application configures logging.
logging.getLogger("broker").addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    "Connection": "broker.connection.connection",
    "ConsumerLoop": "broker.messaging.consumer_loop",
    "ConsumerMixin": "broker.messaging.mixins",
    "ConsumerProducerMixin": "broker.messaging.mixins",
    "Exchange": "broker.entities.exchange",
    "Queue": "broker.entities.queue",
    "binding": "broker.entities.exchange",
    "Producer": "broker.messaging.producer",
    "Consumer": "broker.messaging.consumer",
    "Message": "broker.messaging.message",
    "SimpleQueue": "broker.messaging.simple",
    "SimpleBuffer": "broker.messaging.simple",
    "RetryPolicy": "broker.retry.policy",
    "Constant": "broker.retry.policy",
    "Linear": "broker.retry.policy",
    "Exponential": "broker.retry.policy",
    "FullJitter": "broker.retry.policy",
    "BrokerURL": "broker.url.parse",
    "ConnectionPool": "pools",
    "ChannelPool": "pools",
    "ProducerPool": "pools",
    "parse_url": "broker.url.parse",
    "parse_urls": "broker.url.parse",
    # kombu's top-level helpers
    "eventloop": "broker.messaging.common",
    "uuid": "broker.messaging.common",
    "enable_insecure_serializers": "broker.messaging.serialization",
    "disable_insecure_serializers": "broker.messaging.serialization",
    "instrument": "broker.instrumentation",
    "uninstrument": "broker.instrumentation",
}

__all__ = [
    "AccessRefused",
    "AuthenticationError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerURL",
    "ChannelError",
    "ChannelInUse",
    "ChannelLimitExceeded",
    "ChannelPool",
    "ConfigurationError",
    "ConfirmTimeout",
    "Connection",
    "ConnectionBlockedTimeout",
    "ConnectionLimitExceeded",
    "ConnectionPool",
    "Constant",
    "Consumer",
    "ConsumerLoop",
    "ConsumerMixin",
    "ConsumerProducerMixin",
    "ContentDisallowed",
    "DecodeError",
    "EncodeError",
    "Exchange",
    "Exponential",
    "FullJitter",
    "HeartbeatTimeout",
    "IrrecoverableChannelError",
    "IrrecoverableConnectionError",
    "LimitExceeded",
    "Linear",
    "Message",
    "MessageNacked",
    "MessageStateError",
    "MessageUnroutable",
    "NotBoundError",
    "NotFound",
    "OperationalError",
    "PreconditionFailed",
    "Producer",
    "ProducerPool",
    "PublishError",
    "Queue",
    "RecoverableChannelError",
    "RecoverableConnectionError",
    "RetryPolicy",
    "SerializationError",
    "SerializerNotInstalled",
    "SimpleBuffer",
    "SimpleQueue",
    "TLSHandshakeError",
    "TLSVerificationError",
    "TransportNotFound",
    "binding",
    "disable_insecure_serializers",
    "enable_insecure_serializers",
    "eventloop",
    "instrument",
    "parse_url",
    "parse_urls",
    "uninstrument",
    "uuid",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
