"""The write-buffering capability of channels whose publishes complete synchronously.

A ``memory://`` or ``redis://`` publish is done when ``basic_publish``
returns (routed, stored, returned if unroutable): there are no frames to hold
back for a pipelined batch. Their ``buffered_writes()`` returns
:data:`UNBUFFERED`, a :class:`~transports.base.WriteHold` that does nothing.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final, Self

__all__ = ["UNBUFFERED", "Unbuffered"]


class Unbuffered:
    """A write-holding block with nothing to hold; stateless, so one instance serves all."""

    __slots__ = ()

    def start(self) -> None:
        """Nothing to hold: publishes leave as they are made."""

    def release(self, quiet: bool = False) -> None:
        """Nothing was held."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        return "<Unbuffered: publishes complete synchronously>"


#: The one :class:`Unbuffered` block.
UNBUFFERED: Final = Unbuffered()
