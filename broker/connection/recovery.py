"""The recovery record: what a connection declared, replayed after a reconnect.

Every :class:`broker.Connection` holds one :class:`Topology` (created on first
use); entities and consumers reach it through the
:class:`~broker.entities.owner.RecoveryRecord` contract. Exchanges, queues
and bindings are recorded when they are declared through the messaging layer
(:meth:`Exchange.declare <broker.entities.exchange.Exchange.declare>`,
:meth:`Queue.declare <broker.entities.queue.Queue.declare>`, producers' and consumers'
automatic declarations), consumers when they start consuming. After every
reconnect the connection calls :meth:`Topology.replay`, which declares
exchanges, then exchange-to-exchange bindings
(:meth:`Exchange.bind_to <broker.entities.exchange.Exchange.bind_to>`), then queues, then
queue bindings on a fresh channel, and finally revives each consumer so it
keeps delivering to the same callbacks.

The record holds **strong** references, in declaration order. (aio-pika keeps
weak references, so an entity the application stopped referencing is silently
left out of recovery.) Entities leave the record when they are deleted, when a
consumer is cancelled, or when they were created with ``recover=False``.

Server-named queues (declared with the name ``''``): an exclusive one died
with the old connection, so replay declares it again with ``''`` and the
broker picks a new name, which is written back into the same
:class:`~broker.entities.queue.Queue` object; bindings and consumers refer to that
object, so they follow the new name. A non-exclusive server-named queue is
declared again under its old name, and gets a new name only if that fails.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from broker.entities.base import freeze
from broker.errors import BrokerConnectionError, ChannelError

if TYPE_CHECKING:
    from broker.entities.owner import ChannelOwner, RecoverableConsumer
    from broker.entities.queue import Exchange, Queue
    from transports.base import Channel

__all__ = ["BindingRecord", "ExchangeBindingRecord", "ReplayFailure", "Topology", "note_declared"]

logger = logging.getLogger(__name__)


class BindingRecord(NamedTuple):
    """One queue-to-exchange binding, by queue object (its name may change)."""

    queue: Queue
    exchange: str
    routing_key: str
    arguments: Mapping[str, Any] | None


class ExchangeBindingRecord(NamedTuple):
    """One exchange-to-exchange binding: ``destination`` receives from ``source``."""

    destination: str
    source: str
    routing_key: str
    arguments: Mapping[str, Any] | None


class ReplayFailure(NamedTuple):
    """An entity or consumer that could not be restored by :meth:`Topology.replay`."""

    what: object
    error: BaseException


def _queue_key(queue: Queue) -> object:
    # A server-named queue's name changes on replay, so it is keyed by identity.
    return ("id", id(queue)) if queue.server_named else ("name", queue.name)


class Topology:
    """Declared exchanges, queues, bindings and live consumers of one connection.

    Thread-safe: records may be added from any thread; :meth:`replay` works on
    a snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: dict[str, Exchange] = {}
        self._queues: dict[object, Queue] = {}
        self._bindings: dict[tuple[object, ...], BindingRecord] = {}
        self._exchange_bindings: dict[tuple[object, ...], ExchangeBindingRecord] = {}
        self._consumers: dict[int, RecoverableConsumer] = {}

    # -- recording ----------------------------------------------------------------

    def record_exchange(self, exchange: Exchange) -> None:
        """Remember ``exchange`` (the latest definition of a name wins)."""
        if exchange.name:
            with self._lock:
                self._exchanges[exchange.name] = exchange

    def forget_exchange(self, exchange: Exchange | str) -> None:
        """Drop an exchange and every binding to it or from it."""
        name = exchange if isinstance(exchange, str) else exchange.name
        with self._lock:
            self._exchanges.pop(name, None)
            for key in [k for k, b in self._bindings.items() if b.exchange == name]:
                del self._bindings[key]
            for key in [
                k for k, e in self._exchange_bindings.items() if name in (e.source, e.destination)
            ]:
                del self._exchange_bindings[key]

    def record_queue(self, queue: Queue) -> None:
        """Remember ``queue`` (the latest definition of a name wins)."""
        with self._lock:
            self._queues[_queue_key(queue)] = queue

    def forget_queue(self, queue: Queue) -> None:
        """Drop a queue and its bindings."""
        key = _queue_key(queue)
        with self._lock:
            self._queues.pop(key, None)
            for bkey in [k for k in self._bindings if k[0] == key]:
                del self._bindings[bkey]

    def record_binding(
        self,
        queue: Queue,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember that ``queue`` is bound to ``exchange`` with ``routing_key``."""
        if not exchange:
            return  # the default exchange binds every queue implicitly
        key = (_queue_key(queue), exchange, routing_key, freeze(arguments))
        with self._lock:
            self._bindings[key] = BindingRecord(queue, exchange, routing_key, arguments)

    def forget_binding(
        self,
        queue: Queue,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Drop one binding."""
        key = (_queue_key(queue), exchange, routing_key, freeze(arguments))
        with self._lock:
            self._bindings.pop(key, None)

    def record_exchange_binding(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember that exchange ``destination`` is bound to exchange ``source``."""
        key = (destination, source, routing_key, freeze(arguments))
        with self._lock:
            self._exchange_bindings[key] = ExchangeBindingRecord(
                destination, source, routing_key, arguments
            )

    def forget_exchange_binding(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Drop one exchange-to-exchange binding."""
        key = (destination, source, routing_key, freeze(arguments))
        with self._lock:
            self._exchange_bindings.pop(key, None)

    def record_consumer(self, consumer: RecoverableConsumer) -> None:
        """Remember a consuming consumer (held strongly until forgotten)."""
        with self._lock:
            self._consumers[id(consumer)] = consumer

    def forget_consumer(self, consumer: RecoverableConsumer) -> None:
        """Drop a consumer (it was cancelled or closed)."""
        with self._lock:
            self._consumers.pop(id(consumer), None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._exchanges.clear()
            self._queues.clear()
            self._bindings.clear()
            self._exchange_bindings.clear()
            self._consumers.clear()

    # -- reading ------------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        """Recorded exchanges in declaration order."""
        with self._lock:
            return list(self._exchanges.values())

    @property
    def queues(self) -> list[Queue]:
        """Recorded queues in declaration order."""
        with self._lock:
            return list(self._queues.values())

    @property
    def bindings(self) -> list[BindingRecord]:
        """Recorded bindings in declaration order."""
        with self._lock:
            return list(self._bindings.values())

    @property
    def exchange_bindings(self) -> list[ExchangeBindingRecord]:
        """Recorded exchange-to-exchange bindings in declaration order."""
        with self._lock:
            return list(self._exchange_bindings.values())

    @property
    def consumers(self) -> list[RecoverableConsumer]:
        """Recorded consumers in the order they started."""
        with self._lock:
            return list(self._consumers.values())

    def __len__(self) -> int:
        with self._lock:
            return (
                len(self._exchanges)
                + len(self._queues)
                + len(self._bindings)
                + len(self._exchange_bindings)
                + len(self._consumers)
            )

    def __bool__(self) -> bool:
        return True  # a record exists even while empty

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<Topology exchanges={len(self._exchanges)} queues={len(self._queues)} "
                f"bindings={len(self._bindings)} "
                f"exchange_bindings={len(self._exchange_bindings)} "
                f"consumers={len(self._consumers)}>"
            )

    # -- replay -------------------------------------------------------------------

    def replay(self, connection: ChannelOwner) -> list[ReplayFailure]:
        """Declare everything again on ``connection``, then revive the consumers.

        Order: exchanges, exchange-to-exchange bindings, queues, queue
        bindings (on one fresh channel, closed afterwards), then for each
        consumer ``consumer.revive(connection)`` and ``consumer.consume()``.

        A channel error for one entity (for instance a queue now declared by
        someone else with other arguments) is logged and reported in the
        returned list; the rest is still restored. Connection errors propagate:
        the caller's reconnect logic owns them.

        Args:
            connection: the freshly (re)connected :class:`broker.Connection`.

        Returns:
            The entities and consumers that could not be restored.
        """
        with self._lock:
            exchanges = list(self._exchanges.values())
            queues = list(self._queues.values())
            bindings = list(self._bindings.values())
            exchange_bindings = list(self._exchange_bindings.values())
            consumers = list(self._consumers.values())
        failures: list[ReplayFailure] = []
        replayer = _Replayer(connection, failures)
        try:
            for exchange in exchanges:
                replayer.run(exchange, functools.partial(_declare_exchange, exchange))
            for link in exchange_bindings:
                replayer.run(link, functools.partial(_bind_exchange, link))
            for queue in queues:
                replayer.run(queue, functools.partial(replayer.declare_queue, queue))
            for record in bindings:
                replayer.run(record, functools.partial(_bind, record))
        finally:
            replayer.close()
        note_declared(connection.declared_entities, exchanges, queues, bindings, failures)
        for consumer in consumers:
            try:
                consumer.revive(connection)
                consumer.consume()
            except BrokerConnectionError:
                raise
            except ChannelError as exc:
                logger.warning("could not restore consumer %r: %s", consumer, exc)
                failures.append(ReplayFailure(consumer, exc))
        return failures


def note_declared(
    declared: set[Any],
    exchanges: list[Exchange],
    queues: list[Queue],
    bindings: list[BindingRecord],
    failures: list[ReplayFailure],
) -> None:
    """Add what a replay restored to a connection's declared-entities cache ``declared``.

    Used by :meth:`Topology.replay` and by the asyncio replay
    (:mod:`broker.aio.recovery`).
    """
    # So that producers' and consumers' own declarations are not repeated. A
    # queue's cached declaration stands for its bindings too, so a queue counts
    # only when every binding it declares was replayed: a connection lost
    # between its queue.declare and queue.bind recorded the queue alone, and
    # the retry must bind it (or every message would be dropped as unroutable).
    failed = {id(f.what) for f in failures}
    bound = {
        (_queue_key(r.queue), r.exchange, r.routing_key, freeze(r.arguments))
        for r in bindings
        if id(r) not in failed
    }
    for exchange in exchanges:
        if id(exchange) not in failed and exchange.can_cache_declaration:
            declared.add(exchange.declaration_key)
    for queue in queues:
        if id(queue) in failed or not queue.can_cache_declaration:
            continue
        key = _queue_key(queue)
        if all((key, *wanted) in bound for wanted in _wanted_bindings(queue)):
            declared.add(queue.declaration_key)


def _wanted_bindings(queue: Queue) -> list[tuple[str, str, Any]]:
    """The bindings :meth:`Queue.declare <broker.entities.queue.Queue.declare>` makes (recorded)."""
    wanted = []
    if queue.exchange is not None and queue.exchange.name:
        wanted.append((queue.exchange.name, queue.routing_key, freeze(queue.binding_arguments)))
    for extra in queue.bindings:
        if extra.exchange_name:
            wanted.append((extra.exchange_name, extra.routing_key, freeze(extra.arguments)))
    return wanted


def _declare_exchange(exchange: Exchange, channel: Channel) -> None:
    exchange.declare(channel=channel)


def _bind(record: BindingRecord, channel: Channel) -> None:
    channel.queue_bind(
        queue=record.queue.name,
        exchange=record.exchange,
        routing_key=record.routing_key,
        arguments=record.arguments,
    )


def _bind_exchange(record: ExchangeBindingRecord, channel: Channel) -> None:
    channel.exchange_bind(
        destination=record.destination,
        source=record.source,
        routing_key=record.routing_key,
        arguments=record.arguments,
    )


class _Replayer:
    """Runs declarations on one channel, opening a new one after a channel error."""

    def __init__(self, connection: ChannelOwner, failures: list[ReplayFailure]) -> None:
        self.connection = connection
        self.failures = failures
        self._channel: Channel | None = None

    @property
    def channel(self) -> Channel:
        if self._channel is None or not self._channel.is_open:
            self._channel = self.connection.channel()
        return self._channel

    def run(self, what: object, action: Callable[[Channel], object]) -> None:
        try:
            action(self.channel)
        except BrokerConnectionError:
            raise
        except ChannelError as exc:
            logger.warning("could not restore %r after reconnect: %s", what, exc)
            self.failures.append(ReplayFailure(what, exc))
            self._drop_channel()

    def declare_queue(self, queue: Queue, channel: Channel) -> None:
        if queue.server_named and queue.name and not queue.exclusive:
            try:
                queue.queue_declare(channel=channel)
                return
            except ChannelError:
                # Gone (auto-deleted, or lost with its node): ask for a new name.
                self._drop_channel()
                channel = self.channel
        if queue.server_named:
            queue.name = ""
        queue.queue_declare(channel=channel)

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            # It is being discarded either way.
            with contextlib.suppress(ChannelError, BrokerConnectionError):
                channel.close()

    def close(self) -> None:
        self._drop_channel()
