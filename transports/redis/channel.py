"""Channels of the Redis transport: py-amqp's methods, kept in Redis by the broker script.

A channel keeps its own bookkeeping (delivery tags, which consumer holds
which unacked delivery, prefetch) and asks the script for everything else.
Broker-side failures raise the same :class:`~broker.errors.ChannelError`
subclasses, codes and texts as RabbitMQ and close the channel, which returns
its unacked messages to their queues.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Self

from broker.errors import (
    BrokerConnectionError,
    ChannelError,
    ConfigurationError,
    RecoverableChannelError,
)
from transports import base
from transports._shared.properties import coerce_body
from transports._shared.replies import (
    channel_closed,
    check_exchange_type,
    not_implemented,
    precondition,
)
from transports._shared.unbuffered import UNBUFFERED
from transports.redis.consuming import ConsumingMixin, flag
from transports.redis.message import Message, encode, headers_json

if TYPE_CHECKING:
    from transports.redis.connection import RedisConnection

__all__ = ["RedisChannel"]

_MAX_PRIORITY = 255


def _canonical(arguments: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(arguments or {}), sort_keys=True, separators=(",", ":"), default=str)


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or "\x00" in name:
        raise ConfigurationError(f"{kind} name must be a string without NUL, got {name!r}")


class RedisChannel(ConsumingMixin):
    """A channel on a :class:`~transports.redis.connection.RedisConnection`.

    Implements :class:`transports.base.ConfirmingChannel`: a publish is
    confirmed when the broker script returns, and there are no frames to
    buffer.

    Attributes:
        on_return: called as ``on_return(reply_code, reply_text, exchange,
            routing_key, message)`` for an unroutable ``mandatory`` message,
            before :meth:`basic_publish` returns.
        confirm_listener: kept for whoever tracks this channel's confirms; never
            called, since every publish is confirmed when it returns.
    """

    def __init__(
        self, connection: RedisConnection, channel_id: int, owner: object | None = None
    ) -> None:
        self.connection = connection
        self.channel_id = channel_id
        self.uid = f"{connection.uid}.{channel_id}"
        self.owner = owner
        self.on_return: base.ReturnCallback | None = None
        self.confirm_listener: base.ConfirmListener | None = None
        self.next_tag = 1
        self.prefetch_count = 0
        self.prefetch_global = False
        self.consumers = {}
        self.unacked = {}
        self._open = True
        self._why: str | None = None

    # -- state ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open and self.connection.is_open

    def _call(self, op: str, *args: Any) -> Any:
        if not self.is_open:
            raise self._closed_error()
        try:
            return self.connection.call(op, *args)
        except ChannelError as exc:
            self._fail(exc)

    def _fail(self, exc: ChannelError) -> NoReturn:
        """Close the channel for a broker-side error, then raise it."""
        self._why = str(exc)
        self.close()
        raise exc

    def _closed_error(self) -> BrokerConnectionError | RecoverableChannelError:
        if not self.connection.is_open:
            return self.connection.closed_error()
        return channel_closed(self.channel_id, self._why)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel this channel's consumers and put its unacked messages back."""
        if not self._open:
            return
        self._open = False
        consumers = list(self.consumers.values())
        self.forget()
        pairs: list[str] = []
        for consumer in consumers:
            self.connection.remove_consumer(consumer)
            pairs += [consumer.queue, consumer.tag]
        if self.connection.is_open:
            self.connection.call("close_channel", self.connection.uid, self.uid, *pairs)

    def forget(self) -> None:
        """Drop local state only (the connection is gone; its lease cleans up in Redis)."""
        self._open = False
        self.consumers.clear()
        self.unacked.clear()
        self.connection.channels.pop(self.channel_id, None)

    # -- exchanges ----------------------------------------------------------------------

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
        _check_name("exchange", exchange)
        if not passive:
            check_exchange_type(type, exchange, "redis")
        alternate = (arguments or {}).get("alternate-exchange") or ""
        self._call("exchange_declare", exchange, type, flag(passive), flag(durable),
                   flag(auto_delete), str(alternate))  # fmt: skip

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        self._call("exchange_delete", exchange, flag(if_unused))

    def exchange_bind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        _check_name("exchange", destination)
        self._bind("x", destination, source, routing_key, arguments)

    def exchange_unbind(
        self,
        destination: str,
        source: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._unbind("x", destination, source, routing_key, arguments)

    def _bind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        _check_name("exchange", source)
        mode = str((arguments or {}).get("x-match", ""))
        self._call("bind", kind, dest, source, key, _canonical(arguments), mode,
                   self.connection.uid)  # fmt: skip

    def _unbind(
        self, kind: str, dest: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        self._call("unbind", kind, dest, source, key, _canonical(arguments), self.connection.uid)

    # -- queues -------------------------------------------------------------------------

    def queue_declare(
        self,
        queue: str = "",
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> base.QueueDeclareOk | None:
        _check_name("queue", queue)
        generated = not queue and not passive
        name = "amq.gen-" + secrets.token_urlsafe(16) if generated else queue
        x_args = {k: v for k, v in (arguments or {}).items() if k.startswith("x-")}
        priority = x_args.get("x-max-priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            priority = -1
        if not 0 <= priority <= _MAX_PRIORITY:
            self._fail(precondition(f"invalid arg 'x-max-priority' for queue '{name}': "
                                    f"{x_args['x-max-priority']!r} is not an integer "
                                    f"in 0..{_MAX_PRIORITY}"))  # fmt: skip
        name_b, messages, consumers = self._call(
            "queue_declare", name, flag(passive), flag(durable), flag(exclusive),
            flag(auto_delete), _canonical(x_args), priority, flag(generated),
            self.connection.uid,
        )  # fmt: skip
        ok = base.QueueDeclareOk(name_b.decode(), int(messages), int(consumers))
        return None if nowait else ok

    def queue_bind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        _check_name("queue", queue)
        self._bind("q", queue, exchange, routing_key, arguments)

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self._unbind("q", queue, exchange, routing_key, arguments)

    def queue_purge(self, queue: str = "", nowait: bool = False) -> int | None:
        return int(self._call("queue_purge", queue, self.connection.uid))

    def queue_delete(
        self,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
    ) -> int | None:
        count = self._call("queue_delete", queue, flag(if_unused), flag(if_empty),
                           self.connection.uid)  # fmt: skip
        return int(count)

    # -- publishing -------------------------------------------------------------------------

    def prepare_message(self, body: bytes, **properties: Any) -> Message:
        return Message(body, **properties)

    @property
    def confirms_synchronously(self) -> bool:
        """True: a publish is confirmed when :meth:`basic_publish` returns."""
        return True

    def confirm_select(self, nowait: bool = False) -> None:
        """Accepted: a publish is confirmed when the script returns."""

    def buffered_writes(self) -> base.WriteHold:
        """Nothing to hold: a publish is one script call, done when it returns."""
        return UNBUFFERED

    def basic_publish(
        self,
        msg: Any,
        exchange: str = "",
        routing_key: str = "",
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """Route and store a message; an unroutable ``mandatory`` one goes to ``on_return``."""
        if immediate:
            self._fail(not_implemented("immediate=true"))
        properties = dict(getattr(msg, "properties", None) or {})
        body = msg.body if type(msg.body) is bytes else coerce_body(msg.body, properties)
        item = encode(body, properties, exchange, routing_key)
        priority = properties.get("priority") or 0
        routed = self._call("publish", exchange, routing_key, item, headers_json(properties),
                            priority if isinstance(priority, int) else 0)  # fmt: skip
        if not routed and mandatory and self.on_return is not None:
            returned = Message(body, **properties)
            returned.channel = self
            returned.delivery_info = {"exchange": exchange, "routing_key": routing_key}
            self.on_return(312, "NO_ROUTE", exchange, routing_key, returned)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return (
            f"<RedisChannel {self.channel_id} {state} consumers={len(self.consumers)} "
            f"unacked={len(self.unacked)} prefetch={self.prefetch_count}>"
        )
