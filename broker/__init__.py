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

if TYPE_CHECKING:
    from broker.connection import Connection
    from broker.consumer_loop import ConsumerLoop
    from broker.entity import Exchange, Queue, binding
    from broker.message import Message
    from broker.messaging import Consumer, Producer
    from broker.retry import Constant, Exponential, FullJitter, Linear, RetryPolicy
    from broker.simple import SimpleBuffer, SimpleQueue
    from broker.url import BrokerURL, parse_url, parse_urls
    from pools import ChannelPool, ConnectionPool, ProducerPool

__version__ = "0.1.0"

# A library never prints: records go nowhere until the application configures logging.
logging.getLogger("broker").addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    "Connection": "broker.connection",
    "ConsumerLoop": "broker.consumer_loop",
    "Exchange": "broker.entity",
    "Queue": "broker.entity",
    "binding": "broker.entity",
    "Producer": "broker.messaging",
    "Consumer": "broker.messaging",
    "Message": "broker.message",
    "SimpleQueue": "broker.simple",
    "SimpleBuffer": "broker.simple",
    "RetryPolicy": "broker.retry",
    "Constant": "broker.retry",
    "Linear": "broker.retry",
    "Exponential": "broker.retry",
    "FullJitter": "broker.retry",
    "BrokerURL": "broker.url",
    "ConnectionPool": "pools",
    "ChannelPool": "pools",
    "ProducerPool": "pools",
    "parse_url": "broker.url",
    "parse_urls": "broker.url",
}

__all__ = [
    "AccessRefused",
    "AuthenticationError",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerURL",
    "ChannelError",
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
    "ContentDisallowed",
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
    "SimpleBuffer",
    "SimpleQueue",
    "TLSVerificationError",
    "TransportNotFound",
    "binding",
    "parse_url",
    "parse_urls",
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
