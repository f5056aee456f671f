"""The retry loops of :mod:`broker.retry.ensure`, as coroutines.

The same rules, on the same :class:`~broker.retry.policy.RetryPolicy` and
:class:`~broker.retry.policy.RetryState` values (one default,
:data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`): an attempt is one connect
or one call; within a round the next alternate is tried at once and the
backoff applies between rounds; the deadline is checked before every attempt
and sleep, a connect attempt is cut to the time left; irrecoverable errors
propagate at once. Sleeps are :func:`asyncio.sleep`, so they never block the
loop, and cancelling the task ends the loop where it stands.

``errback(exc, interval)``, ``callback()`` and ``on_revive(channel)`` may be
plain functions or coroutine functions.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from broker.errors import RecoverableChannelError, RecoverableConnectionError
from broker.retry.policy import RetryPolicy, RetryState
from transports.base_aio import AsyncChannel

__all__ = [
    "AsyncErrback",
    "AsyncReconnectable",
    "AsyncRevivable",
    "BoundToChannel",
    "autoretried",
    "connect_with_retry",
    "ensured",
]

logger = logging.getLogger("broker.aio.connection")

R = TypeVar("R")

#: ``errback(exc, interval)`` before each retry; may return an awaitable.
AsyncErrback = Callable[[BaseException, float], Any]


class AsyncRevivable(Protocol):
    """An object bound to a channel that can move to a new one (producers, consumers)."""

    async def revive(self, channel: Any) -> None: ...


@runtime_checkable
class BoundToChannel(Protocol):
    """A revivable object that says which channel it uses (producers, consumers, autoretry)."""

    @property
    def channel(self) -> AsyncChannel | None:
        """The channel in use, if any."""
        ...


class AsyncReconnectable(Protocol):
    """What the loops need of a connection; :class:`broker.aio.Connection` implements it."""

    @property
    def alternate_count(self) -> int:
        """How many alternates one round passes over."""
        ...

    def describe_alternates(self) -> str:
        """Every alternate's URL, passwords masked."""
        ...

    def as_uri(self, include_password: bool = False, mask: str = "**") -> str:
        """The current alternate's URL, password masked."""
        ...

    async def connect_once(self, timeout: float | None = None) -> None:
        """One connect attempt to the current alternate, cut to ``timeout`` seconds."""
        ...

    def maybe_switch_next(self) -> None:
        """Make the next alternate the current one."""
        ...

    async def connection_lost(self, exc: BaseException) -> None:
        """Drop the broken link at once and move to the next alternate."""
        ...

    async def default_channel(self) -> AsyncChannel:
        """The shared channel, reopened (connecting if needed) when closed."""
        ...

    async def replacement_channel(self, old: AsyncChannel | None) -> AsyncChannel:
        """A working channel to replace ``old``."""
        ...


async def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
    if fn is not None:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result


async def _sleep(delay: float, callback: Callable[[], Any] | None) -> None:
    """Sleep ``delay`` seconds, calling ``callback`` about once a second (kombu's contract)."""
    if callback is None:
        if delay > 0:
            await asyncio.sleep(delay)
        return
    left = delay
    while True:
        await _call(callback)
        if left <= 0:
            return
        step = min(1.0, left)
        await asyncio.sleep(step)
        left -= step


async def connect_with_retry(
    conn: AsyncReconnectable,
    state: RetryState,
    *,
    errback: AsyncErrback | None = None,
    callback: Callable[[], Any] | None = None,
) -> RetryState:
    """Connect ``conn``, failing over and backing off per ``state.policy``.

    Raises:
        OperationalError: the budget ran out; names the hosts tried.
        AuthenticationError, TLSVerificationError: at once, never retried.
    """
    policy = state.policy
    hosts = conn.alternate_count
    while True:
        try:
            await conn.connect_once(state.remaining())
            return state
        except Exception as exc:
            if not policy.retryable(exc):
                raise
            end_of_round = (state.attempts + 1) % hosts == 0
            state, delay = state.next(
                exc,
                end_of_round=end_of_round,
                what=f"could not connect to {conn.describe_alternates()}",
            )
            failed = conn.as_uri()
            conn.maybe_switch_next()
            logger.warning(
                "connect to %s failed (%s); retrying %s in %.2f s (attempt %d)",
                failed, exc, conn.as_uri(), delay, state.attempts + 1,
            )  # fmt: skip
            await _call(errback, exc, delay)
            await _sleep(delay, callback)


def ensured(
    conn: AsyncReconnectable,
    obj: AsyncRevivable,
    fun: Callable[..., Awaitable[R]],
    policy: RetryPolicy,
    *,
    errback: AsyncErrback | None = None,
    on_revive: Callable[[AsyncChannel], Any] | None = None,
) -> Callable[..., Awaitable[R]]:
    """Wrap the coroutine function ``fun`` so recoverable errors reconnect and retry."""
    name = getattr(fun, "__name__", repr(fun))

    @functools.wraps(fun)
    async def _ensured(*args: Any, **kwargs: Any) -> R:
        state = policy.begin()
        while True:
            try:
                return await fun(*args, **kwargs)
            except Exception as exc:
                if not policy.retryable(exc):
                    raise
                state = await _recover(conn, obj, exc, state, name, errback, on_revive)

    return _ensured


async def _recover(
    conn: AsyncReconnectable,
    obj: AsyncRevivable,
    exc: BaseException,
    state: RetryState,
    name: str,
    errback: AsyncErrback | None,
    on_revive: Callable[[AsyncChannel], Any] | None,
) -> RetryState:
    what = f"{name}() on {conn.as_uri()}"
    if isinstance(exc, RecoverableConnectionError):
        end_of_round = (state.attempts + 1) % conn.alternate_count == 0
        state, delay = state.next(exc, end_of_round=end_of_round, what=what)
        await conn.connection_lost(exc)  # also moves to the next alternate
        logger.warning(
            "%s failed: connection lost (%s); reconnecting to %s in %.2f s",
            what, exc, conn.as_uri(), delay,
        )  # fmt: skip
        await _call(errback, exc, delay)
        await _sleep(delay, None)
        state = await connect_with_retry(conn, state, errback=errback)
        channel = await conn.default_channel()
    else:
        # A channel error (or a user retry_errors class): back off, then retry on a fresh channel.
        state, delay = state.next(exc, end_of_round=True, what=what)
        logger.warning("%s failed (%s); retrying in %.2f s", what, exc, delay)
        await _call(errback, exc, delay)
        await _sleep(delay, None)
        if not isinstance(exc, RecoverableChannelError):
            return state
        # The default channel is replaced by the default channel, another by a new one.
        old = obj.channel if isinstance(obj, BoundToChannel) else None
        channel = await conn.replacement_channel(old)
    await obj.revive(channel)
    await _call(on_revive, channel)
    return state


class _Revival:
    """Holds autoretry's channel so that a reconnect can swap it."""

    def __init__(self, channel: AsyncChannel | None) -> None:
        self.channel = channel

    async def revive(self, channel: Any) -> None:
        self.channel = channel


def autoretried(
    conn: AsyncReconnectable, fun: Callable[..., Awaitable[R]], channel: AsyncChannel | None
) -> tuple[AsyncRevivable, Callable[..., Awaitable[tuple[R, AsyncChannel]]]]:
    """kombu's ``autoretry`` for coroutines: the object to revive and the call.

    The call passes ``fun`` the channel as ``channel=`` and returns
    ``(retval, channel)``; after a reconnect the channel is the revived one.
    """
    revival = _Revival(channel)

    async def _call_fun(*args: Any, **kwargs: Any) -> tuple[R, AsyncChannel]:
        chan = revival.channel if revival.channel is not None else await conn.default_channel()
        revival.channel = chan
        return await fun(*args, channel=chan, **kwargs), chan

    return revival, _call_fun
