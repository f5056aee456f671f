"""Keeping heartbeats flowing while the owning thread is busy in user code.

AMQP brokers close a connection that sends nothing for two heartbeat
intervals. A consumer that spends a minute on one message would be
disconnected if heartbeats were only sent from inside library calls (the
kombu ``heartbeat_check()`` model). :class:`HeartbeatSender` sends a heartbeat
frame from a daemon thread every half interval instead; the
:class:`HeartbeatDriver` a :class:`broker.Connection` holds starts one for each
live link that negotiated heartbeats, and stops it when the link goes.

Threading model: the sender only *writes* from its thread (the transport
keeps each frame whole next to other threads' frames). Reads happen on the
threads using the connection; a silent peer is detected by whichever thread
reads, inside blocking library calls (``drain_events``, confirm waits,
synchronous channel methods).
"""

from __future__ import annotations

import logging
import threading

from transports.base import TransportConnection

__all__ = ["HeartbeatDriver", "HeartbeatSender"]

logger = logging.getLogger("broker.heartbeat")


class HeartbeatSender:
    """A daemon thread sending a heartbeat every ``interval / 2`` seconds.

    Stops by itself when a send fails (the owner will find the broken
    connection on its next call) and on :meth:`stop`.
    """

    def __init__(self, connection: TransportConnection, interval: float, name: str) -> None:
        self._connection = connection
        self._period = interval / 2.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"brokerpool-heartbeat {name}", daemon=True
        )
        self.sent = 0

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; returns without waiting for the thread when called from it."""
        self._stopped.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self._period + 1.0)

    @property
    def is_running(self) -> bool:
        """Whether the thread is still sending."""
        return self._thread.is_alive() and not self._stopped.is_set()

    def _run(self) -> None:
        while not self._stopped.wait(self._period):
            try:
                self._connection.send_heartbeat()
            except Exception as exc:  # the owner sees the broken link on its next call
                logger.debug("heartbeat sender stopping: %s", exc)
                return
            self.sent += 1

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<HeartbeatSender every {self._period:g} s {state} sent={self.sent}>"


class HeartbeatDriver:
    """Runs one :class:`HeartbeatSender` per live link of a connection, when enabled.

    Args:
        enabled: send from a thread at all (``heartbeat_thread=`` of the
            connection); when off, the owner calls ``heartbeat_check()`` itself.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._sender: HeartbeatSender | None = None

    def start(self, connection: TransportConnection, name: str) -> None:
        """Send heartbeats on ``connection`` if it negotiated them (replacing an earlier sender)."""
        self.stop()
        if connection.heartbeat and self.enabled:
            self._sender = HeartbeatSender(connection, connection.heartbeat, name)
            self._sender.start()

    def stop(self) -> None:
        """Stop the current sender, if any."""
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.stop()

    @property
    def is_running(self) -> bool:
        """Whether a sender is sending now."""
        return self._sender is not None and self._sender.is_running

    def __repr__(self) -> str:
        if not self.enabled:
            return "<HeartbeatDriver off>"
        return f"<HeartbeatDriver {self._sender!r}>"
