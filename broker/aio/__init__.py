"""The asyncio sibling of :mod:`broker`: same vocabulary, same options, same errors.

``from broker.aio import Connection``; exchanges, queues and bindings are the
shared declarative values of :mod:`broker`, and errors are :mod:`broker.errors`.
See ``docs/asyncio.rst``.
"""

from __future__ import annotations

from broker.aio.connection import Connection
from broker.aio.consumer import Consumer
from broker.aio.message import Message
from broker.aio.pools import ChannelPool, ConnectionPool, ProducerPool
from broker.aio.producer import Producer
from broker.aio.simple import Empty, SimpleBuffer, SimpleQueue

__all__ = [
    "ChannelPool",
    "Connection",
    "ConnectionPool",
    "Consumer",
    "Empty",
    "Message",
    "Producer",
    "ProducerPool",
    "SimpleBuffer",
    "SimpleQueue",
]
