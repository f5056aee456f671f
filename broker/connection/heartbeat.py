"""Keeping heartbeats flowing while the owning thread is busy in user code.

AMQP brokers close a connection that sends nothing for two heartbeat
intervals. A consumer that spends a minute on one message would be
disconnected if heartbeats were only sent from inside library calls (the
kombu ``heartbeat_check()`` model). :class:`HeartbeatSender` sends a heartbeat
frame from a daemon thread every half interval instead.

Threading model: only the sender *writes* from its thread (py-amqp >= 5.4
serialises frame writes with a lock, so a heartbeat never interleaves with a
publish). All *reads* stay on the owning thread; a silent peer is detected
there, inside blocking library calls (``drain_events``, confirm waits).
"""

from __future__ import annotations

import logging
import threading

from transports.base import TransportConnection

__all__ = ["HeartbeatSender"]

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
