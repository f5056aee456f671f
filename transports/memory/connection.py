"""A connection to the in-process broker (see :mod:`transports.memory.transport`)."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from broker.errors import RecoverableConnectionError
from transports import base
from transports.memory.broker import LOCK, Ready, Session
from transports.memory.channel import MemoryChannel
from transports.memory.message import Message, received
from transports.memory.vhost import VHost

__all__ = ["SERVER_PROPERTIES", "MemoryConnection"]

_new_message = Message.__new__

VERSION = "0.1.0"
SERVER_PROPERTIES: Mapping[str, Any] = MappingProxyType(
    {
        "product": "brokerpool-memory",
        "version": VERSION,
        "platform": f"Python {sys.version.split()[0]}",
        "information": "in-process broker of brokerpool",
        "capabilities": MappingProxyType(
            {
                "publisher_confirms": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "exchange_exchange_bindings": True,
                "connection.blocked": False,
                "authentication_failure_close": True,
                "per_consumer_qos": True,
                "direct_reply_to": False,
                "consumer_priorities": False,
            }
        ),
    }
)


class MemoryConnection(base.TransportConnection):
    """A connection to the in-process broker, in one virtual host."""

    def __init__(self, params: base.ConnectionParams, vhost: VHost, session: Session) -> None:
        self.params = params
        self._vhost = vhost
        self._session = session
        self._channel_ids = itertools.count(1)

    @property
    def is_open(self) -> bool:
        return self._session.open

    @property
    def heartbeat(self) -> float:
        return 0.0

    @property
    def server_properties(self) -> Mapping[str, Any]:
        return SERVER_PROPERTIES

    @property
    def frame_max(self) -> int:
        return 131072

    @property
    def is_blocked(self) -> bool:
        return False

    def channel(self, owner: object | None = None) -> MemoryChannel:
        with LOCK:
            if not self._session.open:
                raise self._closed_error()
            channel_id = next(self._channel_ids)
            channel = MemoryChannel(self._vhost, self._session, channel_id, owner)
            self._session.channels[channel_id] = channel
        return channel

    def drain_events(self, timeout: float | None = None) -> None:
        """Dispatch the deliveries that are ready, waiting up to ``timeout`` for one.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            broker.errors.RecoverableConnectionError: the connection is closed.
        """
        session = self._session
        ready = session.ready
        # The lock of session.cond, taken without ``with`` (half the cost).
        LOCK.acquire()
        try:
            if not ready:
                self._wait_locked(session, timeout)
            if not session.open:
                raise self._closed_error()
            item = ready.popleft()
            budget = len(ready)
        finally:
            LOCK.release()
        # The usual delivery, inlined: one message to a consumer with a callback.
        consumer, entry, tag, redelivered = item
        callback = consumer.callback
        if entry is not None and callback is not None:
            message = _new_message(Message)
            message.body = entry.body
            message.channel = consumer.receiver
            message.delivery_tag = tag
            message._properties = None
            message._info = None
            message._source = (entry, redelivered, consumer.tag, None)
            callback(message)
        else:
            self._deliver(item)
        # Dispatch what was ready on arrival, one at a time: a callback may close
        # its channel, which takes the remaining deliveries back.
        while budget:
            budget -= 1
            LOCK.acquire()
            try:
                if not ready:
                    return
                item = ready.popleft()
            finally:
                LOCK.release()
            self._deliver(item)

    def _wait_locked(self, session: Session, timeout: float | None) -> None:
        """Wait on the session's condition until a delivery is ready or it closes."""
        ready = session.ready
        deadline = None if timeout is None else time.monotonic() + timeout
        session.waiting += 1
        try:
            while not ready and session.open:
                if deadline is None:
                    session.cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                session.cond.wait(remaining)
        finally:
            session.waiting -= 1

    def _deliver(self, item: Ready) -> None:
        consumer, entry, tag, redelivered = item
        if entry is None:
            if consumer.on_cancel is not None:
                consumer.on_cancel(consumer.tag)
            return
        if consumer.callback is None:
            return  # stays unacked until the channel closes, then goes back
        consumer.callback(received(entry, consumer.receiver, tag, redelivered, consumer.tag, None))

    def heartbeat_tick(self, rate: int = 2) -> None:
        """Nothing to do: there is no link that could go silent."""

    def send_heartbeat(self) -> None:
        """Nothing to do: there is no link that could go silent."""

    def verify(self) -> bool:
        return self._session.open

    def close(self, timeout: float = 2.0) -> None:
        """Close every channel (requeueing unacked messages) and exclusive queue."""
        with LOCK:
            self._session.close_locked()

    def teardown(self) -> None:
        self.close()

    def _closed_error(self) -> RecoverableConnectionError:
        return RecoverableConnectionError(
            f"the memory connection to vhost {self._vhost.name!r} is closed"
        )

    def __repr__(self) -> str:
        session = self._session
        state = "open" if session.open else "closed"
        return (
            f"<MemoryConnection vhost={self._vhost.name!r} {state} "
            f"channels={len(session.channels)} ready={len(session.ready)}>"
        )
