"""Virtual hosts of the in-process broker: declarations, bindings, deletions.

Exchanges and routing are in :mod:`transports.memory.exchange`, the matching
rules per exchange type in :mod:`transports.memory.match`; the default
exchange ``''`` routes to the queue named by the routing key.

Deleting an exchange removes every binding it is the source or the
destination of. An auto-delete exchange goes away when its last binding as a
source is removed (by an unbind, or because its destination queue or exchange
was deleted), and that may cascade to the exchanges bound to it, as on
RabbitMQ.

Methods of :class:`VHost` expect :data:`transports.memory.broker.LOCK` to be
held; :func:`open_session` and :func:`reset` take it themselves. A
:class:`VHost` is the :class:`~transports.memory.broker.Host` of the sessions
and channels in it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from transports._shared.replies import (
    access_refused,
    inequivalent,
    locked_error,
    not_found,
    precondition,
)
from transports.memory.broker import LOCK, Queue, Session
from transports.memory.exchange import Exchange, route_all
from transports.memory.match import X_MATCH_MODES, freeze, headers_match, topic_matches

__all__ = [
    "Exchange",
    "VHost",
    "freeze",
    "headers_match",
    "open_session",
    "reset",
    "route_all",
    "topic_matches",
    "vhosts",
]

_vhosts: dict[str, VHost] = {}


class VHost:
    """One virtual host: its exchanges (with the ``amq.*`` defaults) and queues."""

    __slots__ = ("exchanges", "name", "queues", "sessions")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: dict[str, Queue] = {}
        self.sessions: set[Session] = set()
        self.exchanges: dict[str, Exchange] = {"": Exchange("", "direct", True, False, {})}
        for kind in ("direct", "topic", "fanout", "headers"):
            self.exchanges[f"amq.{kind}"] = Exchange(f"amq.{kind}", kind, True, False, {})

    def remove_session(self, session: Session) -> None:
        """A connection closed: it no longer lives in this virtual host."""
        self.sessions.discard(session)

    def exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise not_found("exchange", name, self.name)
        return exchange

    def declare_exchange(
        self, name: str, kind: str, durable: bool, auto_delete: bool, args: Mapping[str, Any]
    ) -> None:
        if name == "":
            raise access_refused("operation not permitted on the default exchange")
        current = self.exchanges.get(name)
        if current is None:
            if name.startswith("amq."):
                raise access_refused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
            self.exchanges[name] = Exchange(name, kind, durable, auto_delete, args)
            return
        for arg, got, now in (
            ("type", kind, current.type),
            ("durable", durable, current.durable),
            ("auto_delete", auto_delete, current.auto_delete),
            (
                "alternate-exchange",
                args.get("alternate-exchange"),
                current.arguments.get("alternate-exchange"),
            ),
        ):
            if got != now:
                raise inequivalent(arg, "exchange", name, self.name, got, now)

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        if name == "" or name.startswith("amq."):
            what = "the default exchange" if name == "" else f"system exchange '{name}'"
            raise access_refused(f"deletion of {what} in vhost '{self.name}' not allowed")
        exchange = self.exchanges.get(name)
        if exchange is None:
            return  # deleting a missing exchange succeeds, as on RabbitMQ
        if if_unused and exchange.in_use:
            raise precondition(f"exchange '{name}' in vhost '{self.name}' in use")
        self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        """Delete a registered exchange and every binding it is the source or destination of."""
        name = exchange.name
        del self.exchanges[name]
        for queue in exchange.bound_queues():
            queue.exchanges.discard(name)
        for destination in exchange.destinations():
            destination.sources.discard(name)
        exchange.outbound.clear()
        for source_name in list(exchange.sources):
            source = self.exchanges.get(source_name)
            if source is not None:  # None: a binding to itself, or a source being removed
                source.remove_destination(exchange)
                self._maybe_auto_delete(source)
        exchange.sources.clear()

    def declare_queue(
        self,
        session: Session,
        name: str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        args: Mapping[str, Any],
    ) -> Queue:
        owner = session if exclusive else None
        if not name:
            name = "amq.gen-" + secrets.token_urlsafe(16)
        elif name.startswith("amq.") and name not in self.queues:
            raise access_refused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(name, durable, auto_delete, args, owner)
            if owner is not None:
                session.exclusive.add(queue)
            return queue
        if queue.owner is not owner:
            raise locked_error(name, self.name)
        if queue.durable != durable:
            raise inequivalent("durable", "queue", name, self.name, durable, queue.durable)
        if queue.auto_delete != auto_delete:
            raise inequivalent(
                "auto_delete", "queue", name, self.name, auto_delete, queue.auto_delete
            )
        # Like RabbitMQ, only x- arguments take part in the equivalence check.
        for key in {k for k in (*args, *queue.arguments) if k.startswith("x-")}:
            got, now = args.get(key), queue.arguments.get(key)
            if freeze(got) != freeze(now):
                raise inequivalent(key, "queue", name, self.name, got, now)
        return queue

    def delete_queue(self, queue: Queue, if_unused: bool, if_empty: bool) -> int:
        """Delete a queue unless a condition forbids it; return its ready message count."""
        if if_unused and queue.consumers:
            raise precondition(f"queue '{queue.name}' in vhost '{self.name}' in use")
        if if_empty and queue.messages:
            raise precondition(f"queue '{queue.name}' in vhost '{self.name}' not empty")
        count = len(queue.messages)
        self.drop_queue(queue)
        return count

    def drop_queue(self, queue: Queue) -> None:
        """Delete a queue: unbind it, cancel its consumers, discard its messages."""
        if queue.deleted:
            return
        queue.deleted = True
        if self.queues.get(queue.name) is queue:
            del self.queues[queue.name]
        for name in queue.exchanges:
            exchange = self.exchanges.get(name)
            if exchange is not None:
                exchange.remove_queue(queue)
                self._maybe_auto_delete(exchange)
        queue.exchanges.clear()
        for consumer in list(queue.consumers):
            consumer.channel.cancel_locked(consumer, notify=True)
        queue.messages.clear()
        if queue.owner is not None:
            queue.owner.exclusive.discard(queue)

    def bind(
        self, queue: Queue, exchange_name: str, routing_key: str, args: Mapping[str, Any]
    ) -> None:
        if exchange_name == "":
            raise access_refused("operation not permitted on the default exchange")
        exchange = self.exchange(exchange_name)
        _check_binding_arguments(exchange, args)
        exchange.bind(queue, routing_key, args)
        queue.exchanges.add(exchange_name)

    def unbind(
        self, queue: Queue, exchange_name: str, routing_key: str, args: Mapping[str, Any]
    ) -> None:
        exchange = self.exchanges.get(exchange_name)
        if exchange is None:
            return  # RabbitMQ treats unbinding from a missing exchange as done
        if exchange.unbind(queue, routing_key, args):
            if not exchange.is_bound(queue):
                queue.exchanges.discard(exchange_name)
            self._maybe_auto_delete(exchange)

    def bind_exchange(
        self, destination: str, source: str, routing_key: str, args: Mapping[str, Any]
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source`` (both must exist)."""
        if not destination or not source:
            raise access_refused("operation not permitted on the default exchange")
        # RabbitMQ names the source when both are missing.
        found_source = self.exchange(source)
        found_destination = self.exchange(destination)
        _check_binding_arguments(found_source, args)
        found_source.bind_exchange(found_destination, routing_key, args)
        found_destination.sources.add(source)

    def unbind_exchange(
        self, destination: str, source: str, routing_key: str, args: Mapping[str, Any]
    ) -> None:
        """Remove an exchange binding; a missing binding or exchange is not an error."""
        if not destination or not source:
            raise access_refused("operation not permitted on the default exchange")
        found_source = self.exchanges.get(source)
        found_destination = self.exchanges.get(destination)
        if found_source is None or found_destination is None:
            return  # as on RabbitMQ
        if found_source.unbind_exchange(found_destination, routing_key, args):
            if not found_source.is_bound_to(found_destination):
                found_destination.sources.discard(source)
            self._maybe_auto_delete(found_source)

    def _maybe_auto_delete(self, exchange: Exchange) -> None:
        # An auto-delete exchange goes away when its last binding as a source is
        # removed; that removes its own inbound bindings, which may cascade.
        if (
            exchange.auto_delete
            and not exchange.in_use
            and self.exchanges.get(exchange.name) is exchange
        ):
            self._remove_exchange(exchange)


def _check_binding_arguments(source: Exchange, args: Mapping[str, Any]) -> None:
    if source.type == "headers":
        mode = args.get("x-match", "all")
        if mode not in X_MATCH_MODES:
            raise precondition(
                f"Invalid x-match field value {mode!r}; expected all, any, all-with-x, "
                "or any-with-x"
            )


def open_session(virtual_host: str) -> tuple[VHost, Session]:
    """A new connection's state in ``virtual_host`` (created on first use), and that host."""
    with LOCK:
        vhost = _vhosts.get(virtual_host)
        if vhost is None:
            vhost = _vhosts[virtual_host] = VHost(virtual_host)
        session = Session(vhost)
        vhost.sessions.add(session)
        return vhost, session


def vhosts() -> dict[str, VHost]:
    """The live virtual hosts by name (hold :data:`LOCK` while reading them)."""
    return _vhosts


def reset() -> None:
    """Wipe every virtual host; open memory connections become closed."""
    with LOCK:
        for vhost in _vhosts.values():
            for session in list(vhost.sessions):
                session.kill_locked("the memory broker was reset")
            vhost.sessions.clear()
        _vhosts.clear()
