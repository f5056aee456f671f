"""``memory://`` for asyncio: the same in-process broker as the synchronous transport.

An :class:`AsyncMemoryConnection` is a session of the one process-wide broker
(:mod:`transports.memory.vhost`), so a synchronous producer and an asyncio
consumer on the same ``memory://`` virtual host see each other, whichever
thread each runs in.

Every broker operation is short and never blocks (the broker lock is held
for microseconds), so channel methods run the synchronous channel's code
directly. Deliveries need no polling: the broker calls the session's
``wakeup`` hook whenever it queues one, from whichever thread published;
the hook schedules a pump on the connection's event loop, which dispatches
what is ready to the consumers' callbacks, a bounded batch per turn of the
loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from broker.errors import ConfigurationError, RecoverableConnectionError
from transports import base, base_aio
from transports._shared.events import NextEvent
from transports.memory.broker import Session
from transports.memory.channel import MemoryChannel
from transports.memory.connection import MemoryConnection
from transports.memory.message import Message
from transports.memory.transport import Transport as SyncTransport
from transports.memory.vhost import VHost, open_session

__all__ = ["AsyncMemoryChannel", "AsyncMemoryConnection", "AsyncTransport"]

#: Most ready deliveries dispatched in one turn of the event loop.
PUMP_BATCH = 256


class AsyncMemoryChannel:
    """A memory channel behind the asyncio channel contract.

    Publishes are confirmed (and returns handed to :attr:`on_return`) before
    :meth:`basic_publish` returns, as on the synchronous side.
    """

    def __init__(self, channel: MemoryChannel) -> None:
        self._channel = channel
        self.channel_id = channel.channel_id
        self.owner = channel.owner
        self.confirm_listener: base.ConfirmListener | None = None
        self._slice = base_aio.TimeSlice()

    @property
    def on_return(self) -> base.ReturnCallback | None:
        """Called for a ``mandatory`` message no queue took, before the publish returns."""
        return self._channel.on_return

    @on_return.setter
    def on_return(self, callback: base.ReturnCallback | None) -> None:
        self._channel.on_return = callback

    @property
    def is_open(self) -> bool:
        """True until this channel or its connection is closed."""
        return self._channel.is_open

    @property
    def confirms_synchronously(self) -> bool:
        """True: a publish is confirmed when :meth:`basic_publish` returns."""
        return True

    def __repr__(self) -> str:
        return f"<AsyncMemoryChannel {self._channel!r}>"

    async def close(self) -> None:
        """Close the channel; its unacked messages return to their queues."""
        self._channel.close()

    async def confirm_select(self, nowait: bool = False) -> None:
        """Enter confirm mode (publishes are confirmed when they return)."""
        self._channel.confirm_select(nowait)

    async def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Declare an exchange (``passive``: only check that it exists)."""
        self._channel.exchange_declare(
            exchange, type, passive, durable, auto_delete, nowait, arguments
        )

    async def exchange_delete(
        self, exchange: str, if_unused: bool = False, nowait: bool = False
    ) -> None:
        """Delete an exchange and its bindings."""
        self._channel.exchange_delete(exchange, if_unused, nowait)

    async def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Route what ``source`` takes by this binding on through ``destination``."""
        self._channel.exchange_bind(destination, source, routing_key, nowait, arguments)

    async def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove an exchange binding."""
        self._channel.exchange_unbind(destination, source, routing_key, nowait, arguments)

    async def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> base.QueueDeclareOk | None:
        """Declare a queue; ``queue=''`` gets a server-named one."""
        return self._channel.queue_declare(
            queue, passive, durable, exclusive, auto_delete, nowait, arguments
        )

    async def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        self._channel.queue_bind(queue, exchange, routing_key, nowait, arguments)

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a binding."""
        self._channel.queue_unbind(queue, exchange, routing_key, nowait, arguments)

    async def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        """Drop a queue's ready messages; return how many."""
        return self._channel.queue_purge(queue, nowait)

    async def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        """Delete a queue; return how many ready messages it held."""
        return self._channel.queue_delete(queue, if_unused, if_empty, nowait)

    def prepare_message(self, body: bytes, **properties: Any) -> Message:
        """Build a message for :meth:`basic_publish`."""
        return self._channel.prepare_message(body, **properties)

    async def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Route a message to its queues now.

        A publish never waits; a task that keeps publishing yields to the loop
        first every :data:`~transports.base_aio.SLICE` seconds, so that
        consumers and timers run meanwhile.
        """
        if self._slice.due():
            await asyncio.sleep(0)
        self._channel.basic_publish(msg, exchange, routing_key, mandatory, immediate)

    async def basic_get(self, queue: str = "", no_ack: bool = False) -> Message | None:
        """Take the next ready message, or ``None``."""
        return self._channel.basic_get(queue, no_ack)

    async def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        nowait: bool = False,
        callback: base.MessageCallback | None = None,
        arguments: Mapping[str, Any] | None = None,
        on_cancel: Callable[[str], None] | None = None,
    ) -> str:
        """Start a consumer; its callback runs on the connection's event loop."""
        return self._channel.basic_consume(
            queue, consumer_tag, no_local, no_ack, exclusive, nowait, callback, arguments,
            on_cancel,
        )  # fmt: skip

    async def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        """Stop a consumer."""
        self._channel.basic_cancel(consumer_tag, nowait)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge one delivery, or every one up to ``delivery_tag`` (yielding as a publish)."""
        if self._slice.due():
            await asyncio.sleep(0)
        self._channel.basic_ack(delivery_tag, multiple)

    async def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        """Reject one delivery."""
        self._channel.basic_reject(delivery_tag, requeue)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject one delivery, or every one up to ``delivery_tag``."""
        self._channel.basic_nack(delivery_tag, multiple, requeue)

    async def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        """Limit unacked pushed deliveries."""
        self._channel.basic_qos(prefetch_size, prefetch_count, a_global)

    async def basic_recover(self, requeue: bool = False) -> None:
        """Return every unacked message to its queue."""
        self._channel.basic_recover(requeue)


class AsyncMemoryConnection(base_aio.AsyncTransportConnection):
    """A session of the in-process broker, read by the event loop it was opened on."""

    def __init__(
        self,
        params: base.ConnectionParams,
        vhost: VHost,
        session: Session,
        on_lost: base_aio.LostCallback | None = None,
    ) -> None:
        self.params = params
        self._connection = MemoryConnection(params, vhost, session)
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._pump_scheduled = False
        self._closed = False
        self._next_event = NextEvent()
        session.wakeup = self._wakeup

    def _wakeup(self) -> None:
        # Runs with the broker lock held, in whichever thread queued a delivery.
        if self._pump_scheduled or self._loop.is_closed():
            return
        self._pump_scheduled = True
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._pump)
        else:
            self._loop.call_soon_threadsafe(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False  # before draining: a later delivery schedules anew
        connection = self._connection
        dispatched = 0
        try:
            while dispatched < PUMP_BATCH:
                connection.drain_events(0)
                dispatched += 1
            self._wakeup()  # more may be ready: continue on the next turn
        except TimeoutError:
            pass
        except RecoverableConnectionError as exc:
            self._lost(exc)
            return
        if dispatched:
            self._next_event.happened()
        elif not connection.is_open:
            self._lost(RecoverableConnectionError(f"{connection!r} was closed by the broker"))

    def _lost(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._next_event.happened(exc)
        if self._on_lost is not None:
            self._on_lost(exc)

    @property
    def is_open(self) -> bool:
        return not self._closed and self._connection.is_open

    @property
    def heartbeat(self) -> float:
        return 0.0

    @property
    def server_properties(self) -> Mapping[str, Any]:
        return self._connection.server_properties

    @property
    def is_blocked(self) -> bool:
        return False

    async def channel(self, owner: object | None = None) -> AsyncMemoryChannel:
        """Open a new channel."""
        return AsyncMemoryChannel(self._connection.channel(owner))

    async def drain_events(self, timeout: float | None = None) -> None:
        """Wait until the next delivery was dispatched (see the contract)."""
        if not self.is_open:
            raise RecoverableConnectionError(f"{self._connection!r} is closed")
        await self._next_event.wait(timeout, repr(self._connection))

    def verify(self) -> bool:
        return self.is_open

    async def close(self, timeout: float = 2.0) -> None:
        """Close every channel (requeueing unacked messages) and exclusive queue."""
        self.teardown()

    def teardown(self) -> None:
        self._closed = True
        self._connection.close()
        self._next_event.happened(RecoverableConnectionError(f"{self._connection!r} is closed"))

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<AsyncMemoryConnection {state} {self._connection!r}>"


class AsyncTransport(base_aio.AsyncTransport):
    """Connections to the in-process broker, for asyncio."""

    name: ClassVar[str] = SyncTransport.name
    capabilities: ClassVar[base.Capabilities] = SyncTransport.capabilities

    async def connect(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: base_aio.LostCallback | None = None,
    ) -> AsyncMemoryConnection:
        """Open a connection to ``params.virtual_host`` (host, port and login are ignored)."""
        if not isinstance(params.virtual_host, str):
            raise ConfigurationError(f"virtual_host must be a string, got {params.virtual_host!r}")
        vhost, session = open_session(params.virtual_host)
        return AsyncMemoryConnection(params, vhost, session, on_lost)
