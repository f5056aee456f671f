"""What the ``brokerpool`` subcommands print: narration lines, JSON lines, error lines.

Every command writes through these, so that output is flushed line by line
(a pipe reader sees each line when it happens), every error is one line
with its passwords masked, and text from a broker (message bodies) is made
inert with :func:`printable` before it reaches a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from broker.errors import BrokerError
from broker.url.parse import mask_password

__all__ = ["dump_json", "error_line", "printable", "say"]


def say(text: str) -> None:
    """Print ``text`` as one line on stdout, flushed at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def dump_json(obj: Any) -> None:
    """Print ``obj`` as one line of JSON on stdout (keys sorted, unknown types as text)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")


def error_line(exc: BaseException) -> str:
    """One line describing ``exc`` for stderr, passwords masked.

    Multi-line messages are folded so a script's log gets exactly one line.
    Errors from outside the library are prefixed with their class name.
    """
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, BrokerError):
        text = f"{type(exc).__name__}: {text}"
    return mask_password(" ".join(text.split()))


def printable(text: str) -> str:
    """``text`` with every control character escaped, so it prints as one inert line.

    A body may hold anything; printed raw, a NUL, a carriage return or an
    escape sequence would rewrite what the terminal shows (or run one of its
    commands), and a newline would split one message over several lines.
    Control characters (C0, DEL, C1) and the bidirectional overrides become
    Python-style escapes (``\\n``, ``\\x1b``, ``\\u202e``); a backslash
    stays as it is.
    """
    if text.isprintable():
        return text
    return "".join(_ESCAPES.get(ch) or ch for ch in text)


#: Every code point :func:`printable` escapes, with its escape.
_ESCAPES: dict[str, str] = {
    ch: repr(ch)[1:-1]
    for ch in map(chr, [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                        *range(0x2066, 0x206A)])
}  # fmt: skip
