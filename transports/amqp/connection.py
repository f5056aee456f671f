"""A connection of the AMQP transport: one py-amqp connection behind the brokerpool contract.

:class:`AmqpConnection` is what :class:`transports.amqp.transport.Transport`
opens; its channels are :class:`~transports.amqp.channel.AmqpChannel`. What it
adds over calling py-amqp directly:

* every wait is bounded: ``connect_timeout`` covers the TCP connect, the TLS
  handshake and the AMQP handshake together; :meth:`AmqpConnection.close`
  honours its timeout; :meth:`AmqpConnection.drain_events` honours its
  timeout in total even while heartbeat frames keep arriving;
* with heartbeats on, a silent peer raises
  :class:`~broker.errors.HeartbeatTimeout` within about two intervals from
  ``drain_events`` and from blocking channel calls alike;
* ``ssl=`` accepts an :class:`ssl.SSLContext`, certificate failures raise
  :class:`~broker.errors.TLSVerificationError`, and a handshake that cannot
  work (TLS to a plain port) :class:`~broker.errors.TLSHandshakeError`.

``transport_options`` keys read here: ``frame_max`` and ``channel_max``
(upper bounds; the broker may lower them). Other keys are left to other
layers and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from broker.errors import (
    BrokerConnectionError,
    BrokerError,
    ChannelLimitExceeded,
    RecoverableConnectionError,
)
from transports import base
from transports._shared.tls import TLSSettings, tls_settings
from transports.amqp.channel import AmqpChannel
from transports.amqp.driver import Driver
from transports.amqp.errors import DRIVER_ERRORS, ErrorTranslator, display_url, translate
from transports.amqp.options import driver_kwargs

__all__ = ["AmqpConnection"]

logger = logging.getLogger(__name__)

# py-amqp may trip over its own torn-down state while closing.
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, AttributeError)


class AmqpConnection(base.TransportConnection):
    """One py-amqp connection behind the :class:`transports.base.TransportConnection` contract.

    Constructed unconnected by the transport's ``connect``, which then calls
    :meth:`open`. Once open it may be shared by threads, each using channels
    of its own: writes are serialised per method by py-amqp's frame writer,
    reads go through the driver's demux (see :mod:`transports.amqp.demux`),
    and a failure found by any thread is raised by every thread waiting on
    the connection.

    Attributes:
        params: what the connection was opened with.
        display_url: the broker URL with the password masked, for messages.
    """

    def __init__(
        self,
        params: base.ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
    ) -> None:
        self.params = params
        self._tls: TLSSettings | None = tls_settings(params.ssl, params.hostname)
        self.display_url = display_url(
            params.hostname,
            params.port,
            params.userid or "guest",
            params.virtual_host,
            tls=self._tls is not None,
        )
        self._on_blocked = on_blocked
        self._on_unblocked = on_unblocked
        self._blocked = False
        self._closed = False
        self._failure: BrokerError | None = None
        self._poller: select.poll | None = None  # made on the first verify()
        self._verify_lock = threading.Lock()  # one poll() on the poller at a time
        self._errors = ErrorTranslator(
            self.display_url, is_lost=self.is_lost, after=self._after_error
        )
        self._driver = Driver(
            **driver_kwargs(params, self._tls),
            on_blocked=self._handle_blocked,
            on_unblocked=self._handle_unblocked,
        )

    # -- opening ------------------------------------------------------------------

    def open(self) -> None:
        """Connect and log in, within ``params.connect_timeout`` in total."""
        driver = self._driver
        timeout = self.params.connect_timeout
        driver.deadline = None if timeout is None else monotonic() + timeout
        self._errors.connecting = True
        try:
            with self._errors:
                driver.connect()
                driver.share()
        except BaseException:
            self.teardown()  # never leave a half-open socket behind
            raise
        finally:
            driver.deadline = None
            self._errors.connecting = False
        self._errors.heartbeat = self.heartbeat
        logger.debug("connected to %s (heartbeat=%s)", self.display_url, self.heartbeat)

    # -- state --------------------------------------------------------------------

    def is_lost(self) -> bool:
        """True when the socket is gone or known broken (whether or not we closed it)."""
        transport = self._driver.current_transport
        return transport is None or not transport.connected

    @property
    def driver(self) -> Driver:
        """The py-amqp connection underneath (for this transport's channels and diagnostics)."""
        return self._driver

    @property
    def is_open(self) -> bool:
        """True until closed, torn down or found broken."""
        return not self._closed and not self.is_lost()

    @property
    def heartbeat(self) -> float:
        """The negotiated heartbeat interval in seconds (0: off)."""
        return float(self._driver.heartbeat or 0)

    @property
    def server_properties(self) -> Mapping[str, Any]:
        """The broker's ``connection.start`` properties (product, version, capabilities)."""
        props: Mapping[str, Any] = self._driver.server_properties
        return props

    @property
    def frame_max(self) -> int:
        """The negotiated maximum frame size in bytes."""
        return int(self._driver.frame_max)

    @property
    def channel_max(self) -> int:
        """The negotiated highest channel number."""
        return int(self._driver.channel_max)

    @property
    def is_blocked(self) -> bool:
        """True between the broker's ``connection.blocked`` and ``connection.unblocked``."""
        return self._blocked

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("lost" if self.is_lost() else "open")
        blocked = " blocked" if self._blocked else ""
        return f"<AmqpConnection {self.display_url} {state}{blocked} heartbeat={self.heartbeat:g}>"

    # -- channels and events --------------------------------------------------------

    def channel(self, owner: object | None = None) -> AmqpChannel:
        """Open a new channel.

        Raises:
            broker.errors.ChannelLimitExceeded: ``channel_max`` channels are open.
        """
        driver = self._require_open()
        if driver.channels_in_use >= driver.channel_max:
            raise ChannelLimitExceeded(
                f"all {driver.channel_max} channels of {self.display_url} are in use"
            )
        with self._errors:
            chan = driver.channel()
        return AmqpChannel(self, chan, owner)

    def drain_events(self, timeout: float | None = None) -> None:
        """Dispatch at least one event, or raise :class:`TimeoutError` after ``timeout`` s.

        Heartbeat frames are not events and do not extend the wait. With
        heartbeats on, ours are sent meanwhile and a silent peer raises
        :class:`~broker.errors.HeartbeatTimeout`, also when ``timeout`` is None.
        With several threads draining, each gets the events of the channels
        it used last and the deliveries of consumers whose thread does not
        drain (see :mod:`transports.amqp.demux`).
        """
        driver = self._require_open()
        deadline = None if timeout is None else monotonic() + max(timeout, 0.0)
        try:
            driver.drain_until(deadline)
        except TimeoutError:
            raise TimeoutError(f"no event from {self.display_url} within {timeout:g} s") from None
        except DRIVER_ERRORS as exc:
            raise self._errors.error_for(exc) from exc

    # -- heartbeats ------------------------------------------------------------------

    def heartbeat_tick(self, rate: int = 2) -> None:
        """Send a heartbeat when due; raise HeartbeatTimeout when the peer went silent.

        Only frames that were read count as signs of life, so call this
        alongside :meth:`drain_events` (which already ticks on its own).
        """
        driver = self._require_open()
        with self._errors:
            driver.heartbeat_tick(rate)

    def send_heartbeat(self) -> None:
        """Send one heartbeat frame now; safe from a thread that does not own the connection.

        Unlike the owner's calls, a failure here does not tear the connection
        down (that would race with the owner); the owner finds out on its next call.
        Over TLS the transport serialises this write with the owner's reads,
        since one OpenSSL connection must not be read and written at once.
        """
        self._require_open()
        try:
            self._driver.send_heartbeat()
        except DRIVER_ERRORS as exc:
            raise translate(exc, self.display_url, connection_lost=True) from exc
        except AttributeError:  # the owner tore the socket down meanwhile
            raise RecoverableConnectionError(
                f"connection to {self.display_url} is closed"
            ) from None

    def verify(self) -> bool:
        """Non-blocking liveness check: False when the socket is closed, reset or at EOF."""
        transport = self._driver.current_transport
        if self._closed or transport is None or not transport.connected:
            return False
        sock = transport.sock
        if sock is None or sock.fileno() < 0:
            return False
        make_poller = getattr(select, "poll", None)
        if make_poller is None:  # eventlet's monkey patching removes select.poll
            return _socket_alive_select(sock)
        with self._verify_lock:
            poller = self._poller
            if poller is None:
                # Pools verify on every checkout: one registered poller makes the
                # common case a single poll(0) system call.
                poller = self._poller = make_poller()
                poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return _socket_alive(sock, poller)

    # -- closing ----------------------------------------------------------------------

    def close(self, timeout: float = 2.0) -> None:
        """Close gracefully within ``timeout`` seconds, then drop the socket. Never raises."""
        if self._closed:
            return
        driver = self._driver
        try:
            if not self.is_lost():
                budget = max(timeout, 0.001)
                driver.deadline = monotonic() + budget
                # Bounds the close frame's write too, not only the reads.
                driver.transport.sock.settimeout(budget)
                driver.close()
        except _CLOSE_ERRORS as exc:
            logger.debug("graceful close of %s failed: %r", self.display_url, exc)
        finally:
            driver.deadline = None
            self.teardown()

    def teardown(self) -> None:
        """Drop the socket at once, without any handshake. Safe to repeat."""
        self._closed = True
        driver = self._driver
        # Frames still held for a pipelined batch can no longer be sent.
        driver.drop_writes()
        transport = driver.current_transport
        if transport is not None and transport.sock is not None:
            sock, transport.sock = transport.sock, None
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        driver.collect()

    # -- internals -----------------------------------------------------------------------

    def connection_failed(self, err: BrokerError) -> None:
        """A connection-level error was raised: the link is unusable, drop it."""
        logger.debug("connection to %s failed: %s", self.display_url, err)
        if self._failure is None:
            self._failure = err
        self.teardown()

    @property
    def failure(self) -> BrokerError | None:
        """The first connection-level error this connection raised, if any."""
        return self._failure

    def _after_error(self, err: BrokerError) -> None:
        if isinstance(err, BrokerConnectionError):
            self.connection_failed(err)

    def _require_open(self) -> Driver:
        if not self.is_open:
            state = "closed" if self._closed else "lost"
            raise RecoverableConnectionError(f"connection to {self.display_url} is {state}")
        return self._driver

    def _handle_blocked(self, reason: str) -> None:
        self._blocked = True
        logger.info("%s blocked this connection: %s", self.display_url, reason)
        if self._on_blocked is not None:
            self._on_blocked(reason)

    def _handle_unblocked(self) -> None:
        self._blocked = False
        logger.info("%s unblocked this connection", self.display_url)
        if self._on_unblocked is not None:
            self._on_unblocked()


def _socket_alive_select(sock: socket.socket) -> bool:
    readable, _, broken = select.select([sock], [], [sock], 0)
    if broken:
        return False
    if readable:
        try:
            data = socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return bool(data)
    return True


def _socket_alive(sock: socket.socket, poller: select.poll) -> bool:
    for _fd, events in poller.poll(0):
        if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return False
        if events & select.POLLIN:
            # Peek below TLS (the raw socket): b'' means the peer closed.
            try:
                data = socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            return bool(data)
    return True
