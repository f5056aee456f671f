"""Binding matching rules of the in-process broker, one function per exchange type.

Routing follows AMQP 0-9-1 as RabbitMQ implements it:

* direct: the binding key equals the routing key.
* fanout: every binding matches.
* topic: keys are dot-separated words; ``*`` matches exactly one word and
  ``#`` zero or more. An empty key has no words, so ``#`` matches it and
  ``*`` does not.
* headers: ``x-match`` ``all`` (the default) or ``any`` over the binding's
  arguments, ignoring keys that start with ``x-``; ``all-with-x`` and
  ``any-with-x`` include them. A binding value of ``None`` only requires the
  header to be present.

Pure functions: no broker state, no lock.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

__all__ = [
    "X_MATCH_MODES",
    "binding_matches",
    "freeze",
    "headers_match",
    "match_words",
    "topic_matches",
    "words",
]

#: The ``x-match`` values a headers binding may carry.
X_MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")


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
    hashable: Hashable = value
    return hashable


def words(key: str) -> tuple[str, ...]:
    """The dot-separated words of a topic key (none for ``''``)."""
    return tuple(key.split(".")) if key else ()


def match_words(pattern: Sequence[str], key_words: Sequence[str]) -> bool:
    """Whether a topic pattern, split in words, matches a key split in words."""
    # The set of word positions the pattern prefix can end at; no backtracking blow-up.
    count = len(key_words)
    positions = {0}
    for part in pattern:
        if part == "#":
            positions = set(range(min(positions), count + 1))
        elif part == "*":
            positions = {i + 1 for i in positions if i < count}
        else:
            positions = {i + 1 for i in positions if i < count and key_words[i] == part}
        if not positions:
            return False
    return count in positions


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding ``pattern`` matches ``routing_key``.

    >>> topic_matches("stock.#", "stock.usd.nyse"), topic_matches("*.usd", "usd")
    (True, False)
    """
    return match_words(words(pattern), words(routing_key))


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


def binding_matches(
    kind: str,
    binding_key: str,
    arguments: Mapping[str, Any],
    routing_key: str,
    headers: Mapping[str, Any] | None,
) -> bool:
    """Whether one binding of an exchange of type ``kind`` takes a message.

    The unindexed form of the rules, for the few exchange-to-exchange
    bindings; queue bindings go through the exchange's indexes instead.
    """
    if kind == "direct":
        return binding_key == routing_key
    if kind == "fanout":
        return True
    if kind == "topic":
        return topic_matches(binding_key, routing_key)
    return headers_match(arguments, headers)
