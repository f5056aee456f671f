"""The retry loops behind ``ensure_connection``, ``ensure`` and ``autoretry``.

Rules every loop follows (see ``docs/failover.rst``):

* An attempt is one connect attempt or one call of the wrapped function; the
  policy's ``max_retries`` counts attempts of both kinds.
* A *round* is one pass over the alternates. Within a round the next host is
  tried at once; the backoff delay applies, and advances, only at the end of
  a round.
* The deadline is checked before every attempt and before every sleep, and a
  connect attempt's own timeout is cut to the time left.
* The next alternate is chosen only when another attempt will actually follow.
* Irrecoverable errors (authentication, TLS verification, 404/406 channel
  errors, configuration) propagate at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from broker.errors import RecoverableChannelError, RecoverableConnectionError
from broker.retry.policy import RetryPolicy, RetryState

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from transports.base import Channel

__all__ = ["Errback", "Revivable", "autoretried", "connect_with_retry", "ensured"]

logger = logging.getLogger("broker.connection")

R = TypeVar("R")

#: ``errback(exc, interval)`` is called before each retry with the delay to come.
Errback = Callable[[BaseException, float], None]


class Revivable(Protocol):
    """An object bound to a channel that can move to a new one (Producer, Consumer)."""

    def revive(self, channel: Channel) -> None: ...


def _sleep(policy: RetryPolicy, delay: float, callback: Callable[[], None] | None) -> None:
    """Sleep ``delay`` seconds, calling ``callback`` about once a second (kombu's contract)."""
    if callback is None:
        if delay > 0:
            policy.sleep(delay)
        return
    left = delay
    while True:
        callback()
        if left <= 0:
            return
        step = min(1.0, left)
        policy.sleep(step)
        left -= step


def connect_with_retry(
    conn: Connection,
    state: RetryState,
    *,
    errback: Errback | None = None,
    callback: Callable[[], None] | None = None,
) -> RetryState:
    """Connect ``conn``, failing over and backing off per ``state.policy``.

    Returns the advanced state (the budget is shared with the caller's loop).

    Raises:
        OperationalError: the budget ran out; names the hosts tried.
        AuthenticationError, TLSVerificationError: at once, never retried.
    """
    policy = state.policy
    hosts = conn.alternate_count
    while True:
        try:
            conn._open_current(state.remaining())
            return state
        except BaseException as exc:
            if not policy.retryable(exc):
                raise
            end = (state.attempts + 1) % hosts == 0
            state, delay = state.next(
                exc, end_of_round=end, what=f"could not connect to {conn.describe_alternates()}"
            )
            failed = conn.as_uri()
            conn.maybe_switch_next()
            logger.warning(
                "connect to %s failed (%s); retrying %s in %.2f s (attempt %d)",
                failed,
                exc,
                conn.as_uri(),
                delay,
                state.attempts + 1,
            )
            if errback is not None:
                errback(exc, delay)
            _sleep(policy, delay, callback)


def ensured(
    conn: Connection,
    obj: Revivable,
    fun: Callable[..., R],
    policy: RetryPolicy,
    *,
    errback: Errback | None = None,
    on_revive: Callable[[Channel], Any] | None = None,
) -> Callable[..., R]:
    """Wrap ``fun`` so recoverable errors reconnect or reopen the channel and retry."""
    name = getattr(fun, "__name__", repr(fun))

    @functools.wraps(fun)
    def _ensured(*args: Any, **kwargs: Any) -> R:
        state = policy.begin()
        while True:
            conn._run_pending_callbacks()
            try:
                return fun(*args, **kwargs)
            except BaseException as exc:
                if not policy.retryable(exc):
                    raise
                state = _recover(conn, obj, exc, state, name, errback, on_revive)

    return _ensured


def _recover(
    conn: Connection,
    obj: Revivable,
    exc: BaseException,
    state: RetryState,
    name: str,
    errback: Errback | None,
    on_revive: Callable[[Channel], Any] | None,
) -> RetryState:
    policy = state.policy
    what = f"{name}() on {conn.as_uri()}"
    if isinstance(exc, RecoverableConnectionError):
        hosts = conn.alternate_count
        end = (state.attempts + 1) % hosts == 0
        state, delay = state.next(exc, end_of_round=end, what=what)
        conn._connection_lost(exc)  # also moves to the next alternate
        logger.warning(
            "%s failed: connection lost (%s); reconnecting to %s in %.2f s",
            what,
            exc,
            conn.as_uri(),
            delay,
        )
        if errback is not None:
            errback(exc, delay)
        _sleep(policy, delay, None)
        state = connect_with_retry(conn, state, errback=errback)
        channel = conn.default_channel
    else:
        # A channel error (or a user retry_errors class): back off, then retry
        # on a fresh channel -- kombu retries at once (#612).
        state, delay = state.next(exc, end_of_round=True, what=what)
        logger.warning("%s failed (%s); retrying in %.2f s", what, exc, delay)
        if errback is not None:
            errback(exc, delay)
        _sleep(policy, delay, None)
        if not isinstance(exc, RecoverableChannelError):
            return state
        channel = conn.replacement_channel(getattr(obj, "channel", None))
    obj.revive(channel)
    if on_revive is not None:
        on_revive(channel)
    return state


class _Revival:
    """Holds autoretry's channel so that a reconnect can swap it."""

    def __init__(self, channel: Channel | None) -> None:
        self.channel = channel

    def revive(self, channel: Channel) -> None:
        self.channel = channel


def autoretried(
    conn: Connection, fun: Callable[..., R], channel: Channel | None, opts: dict[str, Any]
) -> Callable[..., tuple[R, Channel]]:
    """kombu's ``autoretry``: ``fun(*args, channel=ch, **kw)`` under ``ensure``.

    The wrapper returns ``(retval, channel)``; after a reconnect the channel
    is the revived one.
    """
    revival = _Revival(channel)

    def _call(*args: Any, **kwargs: Any) -> tuple[R, Channel]:
        chan = revival.channel if revival.channel is not None else conn.default_channel
        revival.channel = chan
        return fun(*args, channel=chan, **kwargs), chan

    return conn.ensure(revival, _call, **opts)
