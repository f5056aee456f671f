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
    from transports.base import Channel

__all__ = [
    "Errback",
    "Reconnectable",
    "Revivable",
    "autoretried",
    "connect_with_retry",
    "ensured",
]

logger = logging.getLogger("broker.connection")

R = TypeVar("R")

#: ``errback(exc, interval)`` is called before each retry with the delay to come.
Errback = Callable[[BaseException, float], None]


class Revivable(Protocol):
    """An object bound to a channel that can move to a new one (Producer, Consumer)."""

    def revive(self, channel: Channel) -> None: ...


class Reconnectable(Protocol):
    """What the retry loops need of a connection; :class:`broker.Connection` implements it.

    The loops own the policy (counting, deadlines, sleeping); the connection
    owns the link: it makes one connect attempt at a time to its current
    alternate, and moves to the next alternate when told.
    """

    @property
    def alternate_count(self) -> int:
        """How many alternates one round passes over."""
        ...

    def describe_alternates(self) -> str:
        """Every alternate's URL, passwords masked (for error messages)."""
        ...

    def as_uri(self, include_password: bool = False, mask: str = "**") -> str:
        """The current alternate's URL, password masked."""
        ...

    def connect_once(self, timeout: float | None = None) -> None:
        """One connect attempt to the current alternate, cut to ``timeout`` seconds.

        Raises the attempt's error; leaves no half-open connection behind.
        """
        ...

    def maybe_switch_next(self) -> None:
        """Make the next alternate (per the failover strategy) the current one."""
        ...

    def connection_lost(self, exc: BaseException) -> None:
        """Drop the broken link at once (no handshake) and move to the next alternate."""
        ...

    def run_pending_callbacks(self) -> None:
        """Run callbacks other threads queued, if called on the owning thread."""
        ...

    @property
    def default_channel(self) -> Channel:
        """The shared channel, reopened (connecting if needed) when closed."""
        ...

    def replacement_channel(self, old: Channel | None) -> Channel:
        """A working channel to replace ``old``."""
        ...


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
    conn: Reconnectable,
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
            conn.connect_once(state.remaining())
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
    conn: Reconnectable,
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
            conn.run_pending_callbacks()
            try:
                return fun(*args, **kwargs)
            except BaseException as exc:
                if not policy.retryable(exc):
                    raise
                state = _recover(conn, obj, exc, state, name, errback, on_revive)

    return _ensured


def _recover(
    conn: Reconnectable,
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
        conn.connection_lost(exc)  # also moves to the next alternate
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
        # ``obj`` is the caller's (kombu asks only for revive()); the ones that
        # are bound to a channel (producers, consumers, autoretry's holder) say
        # which, so that the default channel is replaced by the default channel.
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
    conn: Reconnectable, fun: Callable[..., R], channel: Channel | None
) -> tuple[Revivable, Callable[..., tuple[R, Channel]]]:
    """kombu's ``autoretry``, ready for :func:`ensured`: the object to revive and the call.

    The call passes ``fun`` the channel as ``channel=`` and returns
    ``(retval, channel)``; after a reconnect the channel is the revived one.
    """
    revival = _Revival(channel)

    def _call(*args: Any, **kwargs: Any) -> tuple[R, Channel]:
        chan = revival.channel if revival.channel is not None else conn.default_channel
        revival.channel = chan
        return fun(*args, channel=chan, **kwargs), chan

    return revival, _call
