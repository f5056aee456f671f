"""Exchanges of the in-process broker: bindings, indexes, and routing.

An :class:`Exchange` routes to the queues bound to it through indexes rebuilt
when its bindings change (:meth:`Exchange.route`, the publish hot path).
Exchange-to-exchange bindings (RabbitMQ's ``exchange.bind``) are kept apart,
unindexed, in :attr:`Exchange.outbound`: :func:`route_all` follows them only
for an exchange that has some, so publishing to any other exchange costs
nothing more.

A message published to a source exchange goes to every destination exchange
whose binding matches it by the *source's* type, and from there on by each
destination's own bindings, recursively. Each exchange is visited once per
publish, so cycles end, and each queue gets one copy however many paths lead
to it.

Callers hold :data:`transports.memory.broker.LOCK`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from transports.memory.broker import Queue
from transports.memory.match import binding_matches, freeze, headers_match, match_words, words

__all__ = ["BindingKey", "Exchange", "route_all"]

#: Routing-key results kept per topic exchange before the cache starts over.
_TOPIC_CACHE_SIZE = 4096

BindingKey = tuple[str, str, Hashable]


class Exchange:
    """One exchange: its declaration and bindings, with indexes rebuilt on change.

    ``bindings`` holds its queue bindings (indexed for :meth:`route`;
    ``direct_index`` maps a routing key to its queues, which is all a direct
    exchange needs);
    ``outbound`` its bindings to destination exchanges and ``sources`` the
    names of the exchanges bound to it (both usually empty).
    """

    __slots__ = (
        "_all",
        "_cache",
        "_patterns",
        "arguments",
        "auto_delete",
        "bindings",
        "direct_index",
        "durable",
        "name",
        "outbound",
        "sources",
        "type",
    )

    def __init__(
        self, name: str, kind: str, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> None:
        self.name = name
        self.type = kind
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = dict(arguments)
        self.bindings: dict[BindingKey, tuple[Queue, str, dict[str, Any]]] = {}
        self.outbound: dict[BindingKey, tuple[Exchange, str, dict[str, Any]]] = {}
        self.sources: set[str] = set()
        self.direct_index: dict[str, tuple[Queue, ...]] = {}
        self._all: tuple[Queue, ...] = ()
        self._patterns: list[tuple[tuple[str, ...], Queue]] = []
        self._cache: dict[str, tuple[Queue, ...]] = {}

    @property
    def in_use(self) -> bool:
        """Whether it is the source of any binding (``if_unused``, auto-delete)."""
        return bool(self.bindings or self.outbound)

    # -- queue bindings ------------------------------------------------------------

    def bind(self, queue: Queue, routing_key: str, arguments: Mapping[str, Any]) -> None:
        key = (queue.name, routing_key, freeze(arguments))
        if key not in self.bindings:
            self.bindings[key] = (queue, routing_key, dict(arguments))
            self._reindex()

    def unbind(self, queue: Queue, routing_key: str, arguments: Mapping[str, Any]) -> bool:
        """Remove one binding; return whether it existed."""
        if self.bindings.pop((queue.name, routing_key, freeze(arguments)), None) is None:
            return False
        self._reindex()
        return True

    def is_bound(self, queue: Queue) -> bool:
        return any(bound is queue for bound, _, _ in self.bindings.values())

    def remove_queue(self, queue: Queue) -> None:
        """Drop every binding of ``queue`` (it is being deleted)."""
        self.bindings = {k: b for k, b in self.bindings.items() if b[0] is not queue}
        self._reindex()

    def bound_queues(self) -> list[Queue]:
        return list({id(q): q for q, _, _ in self.bindings.values()}.values())

    # -- exchange bindings (this exchange is the source) --------------------------

    def bind_exchange(
        self, destination: Exchange, routing_key: str, arguments: Mapping[str, Any]
    ) -> None:
        key = (destination.name, routing_key, freeze(arguments))
        if key not in self.outbound:
            self.outbound[key] = (destination, routing_key, dict(arguments))

    def unbind_exchange(
        self, destination: Exchange, routing_key: str, arguments: Mapping[str, Any]
    ) -> bool:
        """Remove one exchange binding; return whether it existed."""
        key = (destination.name, routing_key, freeze(arguments))
        return self.outbound.pop(key, None) is not None

    def is_bound_to(self, destination: Exchange) -> bool:
        return any(bound is destination for bound, _, _ in self.outbound.values())

    def remove_destination(self, destination: Exchange) -> None:
        """Drop every binding to ``destination`` (it is being deleted)."""
        self.outbound = {k: b for k, b in self.outbound.items() if b[0] is not destination}

    def destinations(self) -> list[Exchange]:
        return list({id(x): x for x, _, _ in self.outbound.values()}.values())

    # -- routing -------------------------------------------------------------------

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Queue]:
        """The queues bound here that take a message with this key and headers, each once.

        Exchange-to-exchange bindings are not followed: see :func:`route_all`.
        """
        kind = self.type
        if kind == "direct":
            return self.direct_index.get(routing_key, ())
        if kind == "fanout":
            return self._all
        if kind == "topic":
            found = self._cache.get(routing_key)
            if found is None:
                key_words = words(routing_key)
                found = _unique(
                    q for pattern, q in self._patterns if match_words(pattern, key_words)
                )
                if len(self._cache) >= _TOPIC_CACHE_SIZE:
                    self._cache.clear()
                self._cache[routing_key] = found
            return found
        return _unique(q for q, _, args in self.bindings.values() if headers_match(args, headers))

    def matching_destinations(
        self, routing_key: str, headers: Mapping[str, Any] | None
    ) -> list[Exchange]:
        """The destination exchanges whose binding takes this message (by this type)."""
        kind = self.type
        return [
            destination
            for destination, key, args in self.outbound.values()
            if binding_matches(kind, key, args, routing_key, headers)
        ]

    def _reindex(self) -> None:
        direct: dict[str, list[Queue]] = {}
        for queue, routing_key, _ in self.bindings.values():
            targets = direct.setdefault(routing_key, [])
            if queue not in targets:
                targets.append(queue)
        self.direct_index = {key: tuple(queues) for key, queues in direct.items()}
        self._all = _unique(q for q, _, _ in self.bindings.values())
        self._patterns = [(words(rk), q) for q, rk, _ in self.bindings.values()]
        self._cache.clear()

    def __repr__(self) -> str:
        return (
            f"<memory exchange {self.name!r} type={self.type} bindings={len(self.bindings)} "
            f"exchange_bindings={len(self.outbound)}>"
        )


def _unique(queues: Any) -> tuple[Queue, ...]:
    # A queue bound several ways still gets one copy of a message.
    return tuple({id(q): q for q in queues}.values())


def route_all(
    exchange: Exchange, routing_key: str, headers: Mapping[str, Any] | None
) -> tuple[Queue, ...]:
    """The queues a message published to ``exchange`` reaches, following exchange bindings.

    Each exchange is visited once, so cycles end; each queue appears once,
    however many paths lead to it.
    """
    found = {id(q): q for q in exchange.route(routing_key, headers)}
    visited = {id(exchange)}
    pending = [exchange]
    while pending:
        for destination in pending.pop().matching_destinations(routing_key, headers):
            if id(destination) in visited:
                continue
            visited.add(id(destination))
            for queue in destination.route(routing_key, headers):
                found.setdefault(id(queue), queue)
            if destination.outbound:
                pending.append(destination)
    return tuple(found.values())
