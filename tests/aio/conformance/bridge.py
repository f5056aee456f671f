"""Blocking stand-ins for asyncio transport objects: the synchronous suite runs on them.

An event loop runs in a thread of its own; every call of a
:class:`BlockingChannel` or :class:`BlockingConnection` runs the asyncio
transport's coroutine there and waits for it. Consumer callbacks, confirm
listeners and return handlers run on the loop's thread, as the asyncio
contract says; the suite's callbacks only record what they are given.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from transports.base import (
    ConfirmListener,
    ConnectionParams,
    MessageCallback,
    QueueDeclareOk,
    RawMessage,
    ReturnCallback,
    TransportConnection,
)
from transports.base_aio import AsyncConfirmingChannel, AsyncTransportConnection

__all__ = ["BlockingChannel", "BlockingConnection", "LoopThread"]

R = TypeVar("R")

#: A hang guard for one bridged call, never a speed check.
CALL_TIMEOUT = 60.0


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` on the loop and wait for its result (or its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self.loop.close()


class _NoHold:
    """``buffered_writes()``: asyncio transports coalesce writes by themselves."""

    def start(self) -> None:
        pass

    def release(self, quiet: bool = False) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class BlockingChannel:
    """:class:`transports.base.ConfirmingChannel` over an asyncio channel."""

    def __init__(self, loop: LoopThread, channel: AsyncConfirmingChannel) -> None:
        self._loop = loop
        self._channel = channel
        self.channel_id = channel.channel_id
        self.owner = channel.owner

    @property
    def on_return(self) -> ReturnCallback | None:
        return self._channel.on_return

    @on_return.setter
    def on_return(self, callback: ReturnCallback | None) -> None:
        self._channel.on_return = callback

    @property
    def confirm_listener(self) -> ConfirmListener | None:
        return self._channel.confirm_listener

    @confirm_listener.setter
    def confirm_listener(self, listener: ConfirmListener | None) -> None:
        self._channel.confirm_listener = listener

    @property
    def confirms_synchronously(self) -> bool:
        return self._channel.confirms_synchronously

    @property
    def is_open(self) -> bool:
        return self._channel.is_open

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def buffered_writes(self) -> _NoHold:
        return _NoHold()

    def close(self) -> None:
        self._loop.run(self._channel.close())

    def confirm_select(self, nowait: bool = False) -> None:
        self._loop.run(self._channel.confirm_select(nowait))

    def wait_confirms(self, timeout: float) -> None:
        """Let the loop dispatch what arrived: asyncio channels settle confirms on the loop."""
        if not self.confirms_synchronously:
            self._loop.run(asyncio.sleep(min(timeout, 0.01)))

    def exchange_declare(
        self,
        exchange: str,
        type: str,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop.run(
            self._channel.exchange_declare(
                exchange, type, passive, durable, auto_delete, nowait, arguments
            )
        )

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        self._loop.run(self._channel.exchange_delete(exchange, if_unused, nowait))

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop.run(
            self._channel.exchange_bind(destination, source, routing_key, nowait, arguments)
        )

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop.run(
            self._channel.exchange_unbind(destination, source, routing_key, nowait, arguments)
        )

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> QueueDeclareOk | None:
        return self._loop.run(
            self._channel.queue_declare(
                queue, passive, durable, exclusive, auto_delete, nowait, arguments
            )
        )

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop.run(self._channel.queue_bind(queue, exchange, routing_key, nowait, arguments))

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop.run(self._channel.queue_unbind(queue, exchange, routing_key, nowait, arguments))

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        return self._loop.run(self._channel.queue_purge(queue, nowait))

    def queue_delete(
        self, queue: str = "", if_unused: bool = False, if_empty: bool = False, nowait: bool = False
    ) -> int | None:
        return self._loop.run(self._channel.queue_delete(queue, if_unused, if_empty, nowait))

    def prepare_message(self, body: bytes, **properties: Any) -> Any:
        return self._channel.prepare_message(body, **properties)

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        self._loop.run(
            self._channel.basic_publish(msg, exchange, routing_key, mandatory, immediate)
        )

    def basic_get(self, queue: str = "", no_ack: bool = False) -> RawMessage | None:
        message: RawMessage | None = self._loop.run(self._channel.basic_get(queue, no_ack))
        return message

    def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        nowait: bool = False,
        callback: MessageCallback | None = None,
        arguments: Mapping[str, Any] | None = None,
        on_cancel: Callable[[str], None] | None = None,
    ) -> str:
        return self._loop.run(
            self._channel.basic_consume(
                queue, consumer_tag, no_local, no_ack, exclusive, nowait, callback, arguments,
                on_cancel,
            )
        )  # fmt: skip

    def basic_cancel(self, consumer_tag: str, nowait: bool = False) -> None:
        self._loop.run(self._channel.basic_cancel(consumer_tag, nowait))

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self._loop.run(self._channel.basic_ack(delivery_tag, multiple))

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        self._loop.run(self._channel.basic_reject(delivery_tag, requeue))

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self._loop.run(self._channel.basic_nack(delivery_tag, multiple, requeue))

    def basic_qos(self, prefetch_size: int, prefetch_count: int, a_global: bool) -> None:
        self._loop.run(self._channel.basic_qos(prefetch_size, prefetch_count, a_global))

    def basic_recover(self, requeue: bool = False) -> None:
        self._loop.run(self._channel.basic_recover(requeue))


class BlockingConnection(TransportConnection):
    """:class:`transports.base.TransportConnection` over an asyncio transport connection."""

    def __init__(self, loop: LoopThread, connection: AsyncTransportConnection) -> None:
        self._loop = loop
        self._connection = connection
        self.params: ConnectionParams = connection.params

    @property
    def is_open(self) -> bool:
        return self._connection.is_open

    @property
    def heartbeat(self) -> float:
        return self._connection.heartbeat

    @property
    def server_properties(self) -> Mapping[str, Any]:
        return self._connection.server_properties

    @property
    def frame_max(self) -> int:
        return 131072

    @property
    def is_blocked(self) -> bool:
        return self._connection.is_blocked

    def channel(self, owner: object | None = None) -> BlockingChannel:
        return BlockingChannel(self._loop, self._loop.run(self._connection.channel(owner)))

    def drain_events(self, timeout: float | None = None) -> None:
        self._loop.run(self._connection.drain_events(timeout))

    def heartbeat_tick(self, rate: int = 2) -> None:
        """Nothing to do: asyncio transports keep heartbeats on the loop's timers."""

    def send_heartbeat(self) -> None:
        """Nothing to do (see :meth:`heartbeat_tick`)."""

    def verify(self) -> bool:
        return self._connection.verify()

    def close(self, timeout: float = 2.0) -> None:
        self._loop.run(self._connection.close(timeout))

    def teardown(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._connection.teardown)
