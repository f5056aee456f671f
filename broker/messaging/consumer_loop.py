"""A consume-until-stopped loop that survives broker failures (kombu's ConsumerMixin role).

:class:`ConsumerLoop` connects, starts the consumers you create, and drains
events until :meth:`ConsumerLoop.stop` is called (from any thread, or by
SIGINT/SIGTERM). When the connection breaks it reconnects with backoff,
failing over between alternates; the connection's recovery record then
declares exchanges, queues and bindings again and revives every consumer, so
messages keep arriving at the same callbacks without any code of yours.

Example::

    def consumers(channel):
        return [Consumer(channel, queues=[task_queue], callbacks=[handle])]

    ConsumerLoop(Connection("amqp://a//;amqp://b//"), consumers).run()
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from broker.errors import BrokerError
from broker.retry.policy import Exponential, RetryPolicy
from broker.timeouts import check_seconds

if TYPE_CHECKING:
    from broker.connection.connection import Connection
    from broker.messaging.producer import Consumer
    from transports.base import Channel

__all__ = ["DEFAULT_LOOP_POLICY", "ConsumerLoop"]

logger = logging.getLogger("broker.consumer")

#: The one deliberate exception to :data:`~broker.retry.policy.DEFAULT_RETRY_POLICY`:
#: the loop's job is to consume until stopped, so it reconnects without a count
#: or deadline, backing off exponentially from 0.5 s up to 30 s between rounds.
DEFAULT_LOOP_POLICY = RetryPolicy(
    max_retries=None, backoff=Exponential(base=0.5, factor=2.0, maximum=30.0), timeout=None
)


#: Longest stretch of a backoff sleep between two looks at ``should_stop``.
_STOP_POLL = 0.25


class _Stopped(Exception):
    """Raised inside a backoff sleep when stop() was called."""


class ConsumerLoop:
    """Run consumers until stopped, reconnecting after failures.

    Args:
        connection: the connection to consume from (its alternates are used
            for failover).
        consumers: called once with a fresh channel; returns the consumers to
            run (they are started with ``consume()``).
        policy: how to reconnect; defaults to :data:`DEFAULT_LOOP_POLICY`.
        drain_timeout: longest wait for one event before checking for stop
            (seconds >= 0; anything else raises ConfigurationError).
        on_revive: called with the connection after every successful reconnect.
        on_error: called with each connection error before reconnecting.
        on_connect_error: ``on_connect_error(exc, seconds)`` for every failed
            connect attempt, with the pause before the next one.
        should_stop: also finish when this returns true; asked before every
            wait for events and during backoff pauses (for a flag set by your
            own code, such as kombu's ``ConsumerMixin.should_stop``).
        on_iteration: called before every wait for events.
    """

    def __init__(
        self,
        connection: Connection,
        consumers: Callable[[Channel], Iterable[Consumer]],
        *,
        policy: RetryPolicy | None = None,
        drain_timeout: float = 1.0,
        on_revive: Callable[[Connection], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
        on_connect_error: Callable[[BaseException, float], Any] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_iteration: Callable[[], Any] | None = None,
    ) -> None:
        self.connection = connection
        self._factory = consumers
        self._stop = threading.Event()
        self._should_stop = should_stop
        self._on_iteration = on_iteration
        self._on_connect_error = on_connect_error
        base = policy if policy is not None else DEFAULT_LOOP_POLICY
        self.policy = base.replace(sleep=self._sleep)
        self.drain_timeout = check_seconds(drain_timeout, "drain_timeout")
        self.on_revive = on_revive
        self.on_error = on_error
        self.consumers: list[Consumer] = []
        self.reconnects = 0
        self._running = False

    def _sleep(self, seconds: float) -> None:
        if self._should_stop is None:
            if self._stop.wait(seconds):
                raise _Stopped
            return
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, _STOP_POLL))
        raise _Stopped

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._should_stop is not None and self._should_stop())

    def stop(self) -> None:
        """Ask the loop to finish; safe from any thread and from signal handlers."""
        self._stop.set()

    @property
    def is_running(self) -> bool:
        """Whether :meth:`run` is in progress."""
        return self._running

    def run(self, *, handle_signals: bool = True) -> None:
        """Consume until :meth:`stop`; then cancel the consumers and return.

        Args:
            handle_signals: on the main thread, make SIGINT and SIGTERM stop
                the loop cleanly (previous handlers are restored afterwards).
        """
        self._running = True
        try:
            with self._signals(handle_signals):
                self._connect()
                self.consumers = list(self._factory(self.connection.channel()))
                self._drain_until_stopped()
        except _Stopped:
            pass
        finally:
            self._cancel_consumers()
            self._running = False

    def _drain_until_stopped(self) -> None:
        conn = self.connection
        on_iteration = self._on_iteration
        starting = True
        while not self._stopping():
            if on_iteration is not None:
                on_iteration()
            try:
                if starting:
                    # Starts what is not consuming yet (consume() is idempotent). That
                    # includes a consumer whose first basic_consume the link broke
                    # under (a node shutting down answers it with 541): no recovery
                    # record holds it yet, so it moves to the new link here.
                    for consumer in self.consumers:
                        if not consumer.channel.is_open:
                            consumer.revive(conn)
                        consumer.consume()
                    starting = False
                conn.drain_events(timeout=self.drain_timeout)
            except TimeoutError:
                continue
            except conn.recoverable_connection_errors as exc:
                logger.warning("consumer connection to %s failed: %s", conn.as_uri(), exc)
                if self.on_error is not None:
                    self.on_error(exc)
                self._connect()  # the recovery record revives the consumers
                starting = True
                self.reconnects += 1
                if self.on_revive is not None:
                    self.on_revive(conn)

    def _connect(self) -> None:
        self.connection.ensure_connection(errback=self._on_connect_error, policy=self.policy)

    def _cancel_consumers(self) -> None:
        for consumer in self.consumers:
            with contextlib.suppress(BrokerError):
                consumer.cancel()

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("signal %d: stopping the consumer loop", signum)
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped" if self._stop.is_set() else "idle"
        return (
            f"<ConsumerLoop {self.connection.as_uri()} {state} "
            f"consumers={len(self.consumers)} reconnects={self.reconnects}>"
        )
