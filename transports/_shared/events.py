"""Tasks waiting for an asyncio connection's next event (``drain_events``).

Both asyncio transports dispatch deliveries, confirms and replies as they
read them; ``drain_events`` only waits for the next one. :class:`NextEvent`
holds the waiting tasks' futures and settles them all at once.
"""

from __future__ import annotations

import asyncio

__all__ = ["NextEvent"]


class NextEvent:
    """The futures of the tasks waiting for one connection's next event."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[None]] = []

    @property
    def awaited(self) -> bool:
        """Whether any task waits (so a dispatcher can skip :meth:`happened` cheaply)."""
        return bool(self._waiting)

    async def wait(self, timeout: float | None, source: str) -> None:
        """Wait for the next :meth:`happened` (or its error).

        Cancelling the waiting task only drops its future.

        Raises:
            TimeoutError: nothing happened within ``timeout`` seconds (naming ``source``).
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(f"no event from {source} within {timeout:g} s") from None
        finally:
            if not future.done():
                future.cancel()

    def happened(self, error: BaseException | None = None) -> None:
        """Wake every waiting task; with ``error``, they raise it (the link went down)."""
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def __repr__(self) -> str:
        return f"<NextEvent waiting={len(self._waiting)}>"
