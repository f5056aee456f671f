"""Value types for the command line's numeric options.

Each one turns the text of an option into a number or raises
:class:`argparse.ArgumentTypeError`, so that a value that makes no sense
(``--passes 0``, ``--count -1``, ``--heartbeat -1``) is a usage error: exit
status 2 with the command's usage line, before anything connects.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["MAX_SHORT", "heartbeat_seconds", "integer", "positive_float"]

#: The largest value of an AMQP ``short`` (prefetch count, heartbeat seconds).
MAX_SHORT = 65535


def _bounds(minimum: float, maximum: float | None) -> str:
    return f">= {minimum:g}" if maximum is None else f"from {minimum:g} to {maximum:g}"


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` to ``maximum`` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(
                f"expected a whole number {_bounds(minimum, maximum)}, got {text!r}"
            )
        return value

    return parse


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0 (``inf`` means no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def heartbeat_seconds(text: str) -> float:
    """argparse type: a heartbeat interval, 0 (off) to 65535 seconds, as AMQP carries it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_SHORT):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds {_bounds(0, MAX_SHORT)} (0 turns heartbeats off), "
            f"got {text!r}"
        )
    return value
