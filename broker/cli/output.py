"""What the ``brokerpool`` subcommands print: narration lines, JSON lines, error lines.

Every command writes through these, so that output is flushed line by line
(a pipe reader sees each line when it happens) and every error is one line
with its passwords masked.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from broker.errors import BrokerError
from broker.url.parse import mask_password

__all__ = ["dump_json", "error_line", "say"]


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
