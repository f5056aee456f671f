"""Virtual hosts of the in-process broker: exchanges, routing, declarations.

Routing follows AMQP 0-9-1 as RabbitMQ implements it:

* direct: the binding key equals the routing key.
* fanout: every bound queue.
* topic: keys are dot-separated words; ``*`` matches exactly one word and
  ``#`` zero or more. An empty key has no words, so ``#`` matches it and
  ``*`` does not.
* headers: ``x-match`` ``all`` (the default) or ``any`` over the binding's
  arguments, ignoring keys that start with ``x-``; ``all-with-x`` and
  ``any-with-x`` include them. A binding value of ``None`` only requires the
  header to be present.
* the default exchange ``''`` routes to the queue named by the routing key.

Methods of :class:`Exchange` and :class:`VHost` expect
:data:`transports._memory_broker.LOCK` to be held; :func:`open_session` and
:func:`reset` take it themselves.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from transports._memory_broker import (
    LOCK,
    Queue,
    Session,
    access_refused,
    inequivalent,
    locked_error,
    not_found,
    precondition,
)

__all__ = [
    "Exchange",
    "VHost",
    "freeze",
    "headers_match",
    "open_session",
    "reset",
    "topic_matches",
    "vhosts",
]

#: Routing-key results kept per topic exchange before the cache starts over.
_TOPIC_CACHE_SIZE = 4096

_vhosts: dict[str, VHost] = {}

BindingKey = tuple[str, str, Hashable]


def freeze(value: Any) -> Hashable:
    """A hashable, order-independent form of an AMQP table value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _words(key: str) -> tuple[str, ...]:
    return tuple(key.split(".")) if key else ()


def _match_words(pattern: Sequence[str], words: Sequence[str]) -> bool:
    # The set of word positions the pattern prefix can end at; no backtracking blow-up.
    count = len(words)
    positions = {0}
    for part in pattern:
        if part == "#":
            positions = set(range(min(positions), count + 1))
        elif part == "*":
            positions = {i + 1 for i in positions if i < count}
        else:
            positions = {i + 1 for i in positions if i < count and words[i] == part}
        if not positions:
            return False
    return count in positions


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding ``pattern`` matches ``routing_key``.

    >>> topic_matches("stock.#", "stock.usd.nyse"), topic_matches("*.usd", "usd")
    (True, False)
    """
    return _match_words(_words(pattern), _words(routing_key))


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any] | None) -> bool:
    """Whether a headers-exchange binding with ``arguments`` matches message ``headers``."""
    headers = headers or {}
    mode = arguments.get("x-match", "all")
    with_x = mode in ("all-with-x", "any-with-x")
    wanted = [
        (key, value)
        for key, value in arguments.items()
        if key != "x-match" and (with_x or not key.startswith("x-"))
    ]
    hits = (key in headers and (value is None or headers[key] == value) for key, value in wanted)
    return any(hits) if mode.startswith("any") else all(hits)


class Exchange:
    """One exchange: its declaration and bindings, with indexes rebuilt on change."""

    __slots__ = (
        "_all",
        "_cache",
        "_direct",
        "_patterns",
        "arguments",
        "auto_delete",
        "bindings",
        "durable",
        "name",
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
        self._direct: dict[str, tuple[Queue, ...]] = {}
        self._all: tuple[Queue, ...] = ()
        self._patterns: list[tuple[tuple[str, ...], Queue]] = []
        self._cache: dict[str, tuple[Queue, ...]] = {}

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

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> Sequence[Queue]:
        """The queues a message with this routing key and headers goes to, each once."""
        kind = self.type
        if kind == "direct":
            return self._direct.get(routing_key, ())
        if kind == "fanout":
            return self._all
        if kind == "topic":
            found = self._cache.get(routing_key)
            if found is None:
                words = _words(routing_key)
                found = _unique(q for pattern, q in self._patterns if _match_words(pattern, words))
                if len(self._cache) >= _TOPIC_CACHE_SIZE:
                    self._cache.clear()
                self._cache[routing_key] = found
            return found
        return _unique(q for q, _, args in self.bindings.values() if headers_match(args, headers))

    def _reindex(self) -> None:
        direct: dict[str, list[Queue]] = {}
        for queue, routing_key, _ in self.bindings.values():
            targets = direct.setdefault(routing_key, [])
            if queue not in targets:
                targets.append(queue)
        self._direct = {key: tuple(queues) for key, queues in direct.items()}
        self._all = _unique(q for q, _, _ in self.bindings.values())
        self._patterns = [(_words(rk), q) for q, rk, _ in self.bindings.values()]
        self._cache.clear()

    def __repr__(self) -> str:
        return f"<memory exchange {self.name!r} type={self.type} bindings={len(self.bindings)}>"


def _unique(queues: Any) -> tuple[Queue, ...]:
    # A queue bound several ways still gets one copy of a message.
    return tuple({id(q): q for q in queues}.values())


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
        if if_unused and exchange.bindings:
            raise precondition(f"exchange '{name}' in vhost '{self.name}' in use")
        for queue in exchange.bound_queues():
            queue.exchanges.discard(name)
        del self.exchanges[name]

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
        if exchange.type == "headers":
            mode = args.get("x-match", "all")
            if mode not in ("all", "any", "all-with-x", "any-with-x"):
                raise precondition(
                    f"Invalid x-match field value {mode!r}; expected all, any, all-with-x, "
                    "or any-with-x"
                )
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

    def _maybe_auto_delete(self, exchange: Exchange) -> None:
        # An auto-delete exchange goes away when its last binding is removed.
        if (
            exchange.auto_delete
            and not exchange.bindings
            and self.exchanges.get(exchange.name) is exchange
        ):
            del self.exchanges[exchange.name]


def open_session(virtual_host: str) -> Session:
    """A new connection's state in ``virtual_host`` (created on first use)."""
    with LOCK:
        vhost = _vhosts.get(virtual_host)
        if vhost is None:
            vhost = _vhosts[virtual_host] = VHost(virtual_host)
        session = Session(vhost)
        vhost.sessions.add(session)
        return session


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
