"""How many replicas a confirmed publish waits for, and the error when too few answered (no I/O).

Both Redis connections -- :class:`~transports.redis.connection.RedisConnection`
and its asyncio sibling -- follow these rules and do the I/O themselves
(``INFO replication`` to count, ``WAIT`` to wait):

* ``min_replicas`` set: that many, always;
* unset: 1 while the master has a replica connected, else 0 (nothing to
  wait for). The replicas are counted on first use, then at most once per
  interval (the connection's heartbeat interval), and again whenever a wait
  falls short -- so a publish is not failed for a replica that has just gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.errors import ConfirmTimeout

__all__ = ["ReplicaTarget", "too_few_replicas"]


class ReplicaTarget:
    """How many replicas a confirmed publish must reach, per ``min_replicas`` (see the module).

    Ask :meth:`stale` before reading :attr:`needed`; when it is true, count
    the master's replicas and report the count with :meth:`counted`.

    Args:
        min_replicas: the transport option; ``None`` for the automatic rule.
        interval: the longest an automatic count is trusted, in seconds.
        clock: a monotonic clock (injected in tests).
    """

    def __init__(
        self,
        min_replicas: int | None,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_replicas = min_replicas
        self.interval = interval
        self._clock = clock
        self._auto: int | None = None  # the automatic rule's answer, once counted
        self._counted_at = 0.0

    def stale(self, shortfall: bool = False) -> bool:
        """Whether the replicas must be counted before :attr:`needed` can be trusted.

        Args:
            shortfall: a wait just fell short (a replica may have gone since
                the last count).
        """
        if self.min_replicas is not None:
            return False
        return shortfall or self._auto is None or self._clock() - self._counted_at > self.interval

    def counted(self, replicas: int) -> None:
        """The master has ``replicas`` replicas connected now."""
        self._auto = 1 if replicas else 0
        self._counted_at = self._clock()

    @property
    def needed(self) -> int:
        """Replicas the next confirmed publish must reach (0: do not wait)."""
        if self.min_replicas is not None:
            return self.min_replicas
        return self._auto or 0

    def __repr__(self) -> str:
        rule = "auto" if self.min_replicas is None else f"min_replicas={self.min_replicas}"
        return f"<ReplicaTarget {rule} needed={self.needed}>"


def too_few_replicas(where: str, got: int, needed: int, waited: float) -> ConfirmTimeout:
    """The error of a confirmed publish that fewer than ``needed`` replicas acknowledged."""
    return ConfirmTimeout(
        f"{where}: {got} of the {needed} replica(s) that min_replicas asks for "
        f"acknowledged the write within {waited:g} s; it is on the master only "
        f"and lost if the master fails before a replica copies it (fate unknown)"
    )
