"""AMQP routing tables shared by the transports' tests (RabbitMQ's semantics).

Each row is ``(pattern or binding arguments, routing key or headers, matches)``.
The memory transport's matchers are checked against them directly, the Redis
transport's script through real publishes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HEADERS_CASES", "TOPIC_CASES"]

TOPIC_CASES: list[tuple[str, str, bool]] = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*", "a.b.c", False),
    ("*", "", False),
    ("*", "a", True),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.c.d", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.x.y.c", True),
    ("a.#.#.c", "a.c", True),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("*.#", "a.b", True),
    ("a..b", "a..b", True),
    ("a.*.b", "a..b", True),
    ("", "", True),
    ("", "a", False),
]

HEADERS_CASES: list[tuple[dict[str, Any], Any, bool]] = [
    ({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),  # all is the default
    ({"x-match": "all", "a": 1, "b": 2}, {"a": 1}, False),
    ({"x-match": "all", "a": 1}, {"a": 2}, False),
    ({"x-match": "any", "a": 1, "b": 2}, {"b": 2}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"c": 3}, False),
    ({"x-match": "any", "a": 1}, None, False),
    ({"x-match": "all"}, {}, True),
    ({"x-match": "all", "a": None}, {"a": "anything"}, True),  # presence only
    ({"x-match": "all", "a": None}, {}, False),
    ({"x-match": "all", "x-tag": 1, "a": 1}, {"a": 1}, True),  # x- keys ignored
    ({"x-match": "all-with-x", "x-tag": 1}, {"a": 1}, False),
    ({"x-match": "any-with-x", "x-tag": 1}, {"x-tag": 1}, True),
]
