"""The hook points instrumentation plugs into: :data:`active`, ``None`` when off.

The library's hot paths (a publish, a delivery, an ack, a pool checkout) read
one module attribute, ``hooks.active``, and do nothing more while it is
``None``; that is the whole cost of instrumentation that is not turned on.
:func:`broker.instrumentation.instrument` puts an object with the
:class:`Hooks` methods here (the OpenTelemetry one, :mod:`broker.instrumentation.otel`)
and :func:`broker.instrumentation.uninstrument` takes it away again.

This module imports nothing at run time, so every layer, ``pools`` and
``broker.aio`` included, may read it without pulling anything in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from broker.url.targets import Target
    from transports.base import RawMessage

__all__ = ["Hooks", "PoolCounts", "active", "install", "remove"]

R = TypeVar("R")


class PoolCounts(Protocol):
    """What instrumentation reads of a pool (synchronous or asyncio): its public counts."""

    @property
    def in_use(self) -> int:
        """Items lent out now."""
        ...

    @property
    def idle(self) -> int:
        """Items waiting in the pool."""
        ...

    @property
    def waiting(self) -> int:
        """Borrowers waiting for an item."""
        ...


class Hooks(Protocol):
    """What the library tells instrumentation, and when.

    ``owner`` arguments are the connection a producer, consumer or message
    belongs to (a :class:`broker.Connection` or :class:`broker.aio.Connection`,
    or ``None`` when unknown). Each method must be cheap and must not raise
    for reasons of its own: it runs inside the library's calls.
    """

    # -- messages ---------------------------------------------------------------------

    def publish(
        self,
        owner: object | None,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        send: Callable[[], None],
    ) -> None:
        """Publish one encoded message by calling ``send()``.

        ``properties`` are the message's AMQP properties; the hook may add
        headers to them (a fresh ``application_headers`` mapping, never the
        caller's) before calling ``send``, which publishes them.
        """
        ...

    async def publish_async(
        self,
        owner: object | None,
        body: bytes,
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        send: Callable[[], Awaitable[None]],
    ) -> None:
        """:meth:`publish` for the asyncio producer: ``send()`` is awaited."""
        ...

    def process(
        self, owner: object | None, raw: RawMessage, queue: str, handler: Callable[[], R]
    ) -> R:
        """Run ``handler()``, which hands the delivery ``raw`` from ``queue`` to the application."""
        ...

    async def process_async(
        self,
        owner: object | None,
        raw: RawMessage,
        queue: str,
        handler: Callable[[], Awaitable[None]],
    ) -> None:
        """:meth:`process` for the asyncio consumer's callbacks: ``handler()`` is awaited."""
        ...

    def received(self, owner: object | None, raw: RawMessage, queue: str) -> None:
        """The application took the delivery ``raw`` from ``queue`` itself (no callback)."""
        ...

    def settled(self, owner: object | None, raw: RawMessage, operation: str) -> None:
        """The delivery ``raw`` was settled: ``operation`` is ``ack``, ``reject`` or ``requeue``."""
        ...

    def confirmed(self, seconds: float, batch: bool, nacked: bool) -> None:
        """The broker settled a publish (or, with ``batch``, a confirms() block) in ``seconds``.

        ``nacked``: it (or one of the batch's publishes) was nacked.
        """
        ...

    # -- connections --------------------------------------------------------------------

    def connection_opened(self, conn: object) -> None:
        """``conn`` connected (a first connect or a reconnect)."""
        ...

    def connection_closed(self, conn: object, exc: BaseException | None) -> None:
        """``conn`` lost its link (``exc``) or was closed (``None``)."""
        ...

    def connection_unblocked(self, seconds: float) -> None:
        """A connection the broker had blocked for ``seconds`` is unblocked (or gone)."""
        ...

    def failed_over(self, previous: Target, current: Target) -> None:
        """A connection moved from the alternate ``previous`` to ``current``."""
        ...

    # -- pools ----------------------------------------------------------------------------

    def pool_created(self, pool: PoolCounts) -> None:
        """A pool was made; its counts may be observed for as long as it lives."""
        ...

    def pool_waited(self, pool: PoolCounts, seconds: float, timed_out: bool) -> None:
        """A borrower waited ``seconds`` for ``pool`` (and got nothing if ``timed_out``)."""
        ...

    # -- the command line ---------------------------------------------------------------

    def span(self, name: str) -> AbstractContextManager[str | None]:
        """A span around a whole command; entering gives its trace id, or ``None``."""
        ...

    def current_trace_id(self) -> str | None:
        """The trace id of the current span as 32 hex digits, or ``None`` when there is none."""
        ...


#: The installed hooks, or ``None`` (instrumentation off).
active: Hooks | None = None


def install(hooks: Hooks) -> None:
    """Make ``hooks`` the active hooks (replacing any)."""
    global active
    active = hooks


def remove(hooks: Hooks | None = None) -> None:
    """Turn the hooks off (only if ``hooks`` are the active ones, when given)."""
    global active
    if hooks is None or active is hooks:
        active = None
