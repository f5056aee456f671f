"""The benchmark cases, in report order.

Each module exposes ``cases() -> list[Case]``; :func:`all_cases` collects
them. Importing a case module never imports kombu, pika or brokerpool's
optional parts: runners import what they need and :class:`bench.harness.Skip`
when it is missing.
"""

from __future__ import annotations

from bench.harness import Case

__all__ = ["all_cases"]

_MODULES = (
    "connect",
    "pools",
    "publish",
    "confirms",
    "threads",
    "consume",
    "memory",
    "redis",
    "failover",
    "heartbeat",
    "rss",
    "aio",
)


def all_cases() -> list[Case]:
    """Every case, in the order of the report."""
    import importlib

    out: list[Case] = []
    for name in _MODULES:
        module = importlib.import_module(f"bench.cases.{name}")
        out.extend(module.cases())
    # Scaling cases go last: they are a series, read together.
    return sorted(out, key=lambda c: c.key.startswith("scale-"))
