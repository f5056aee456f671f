"""Checks on the private members of a driver library that a transport relies on.

A transport that must reach into its driver (py-amqp, redis-py) lists every
private member it touches as a :class:`PrivateMember` in one module of its
own, and a unit test calls :func:`missing_members` so that an upgrade which
renames or drops one fails loudly, naming it, instead of breaking at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["PrivateMember", "missing_members"]


class PrivateMember(NamedTuple):
    """One private member of a driver class, where the driver itself uses it, and why we need it."""

    owner: type
    name: str
    #: A method or property of ``owner`` whose code refers to ``name``: while it
    #: does, the driver still reads, writes or calls the member the way we rely on.
    used_by: str
    why: str

    def __str__(self) -> str:
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"

    def problem(self) -> str | None:
        """Why the installed driver no longer provides this member as relied on, or ``None``."""
        user = inspect.getattr_static(self.owner, self.used_by, None)
        if isinstance(user, property):
            user = user.fget
        code = getattr(user, "__code__", None)
        where = f"{self.owner.__qualname__}.{self.used_by}"
        if code is None:
            return f"{self}: {where} is gone ({self.why})"
        if self.name not in code.co_names:
            return f"{self}: {where} no longer uses it ({self.why})"
        return None


def missing_members(members: Iterable[PrivateMember]) -> list[str]:
    """Each of ``members`` the installed driver lacks, and why it matters."""
    return [problem for member in members if (problem := member.problem()) is not None]
