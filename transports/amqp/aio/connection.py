"""An asyncio AMQP connection: handshake, connection-level methods, channels, closing.

:class:`AsyncAmqpConnection` implements
:class:`transports.base_aio.AsyncTransportConnection`. It validates its
parameters with the synchronous transport's :func:`~transports.amqp.options.driver_kwargs`
and :func:`~transports._shared.tls.tls_settings` (same options, same errors),
and translates every failure with :mod:`transports.amqp.errors`.

``connect_timeout`` bounds the TCP connect, the TLS handshake and the AMQP
handshake together; ``close`` bounds its wait for ``connection.close-ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from amqp import sasl, spec
from amqp.exceptions import ConnectionError as DriverConnectionError
from amqp.exceptions import error_for_code

from broker.errors import (
    BrokerConnectionError,
    BrokerError,
    ChannelLimitExceeded,
    ConfigurationError,
    RecoverableConnectionError,
)
from transports import base_aio
from transports._shared.events import NextEvent
from transports._shared.tls import tls_settings
from transports.amqp.aio.channel import AsyncAmqpChannel
from transports.amqp.aio.frames import FrameEncoder, arguments
from transports.amqp.aio.protocol import AmqpProtocol
from transports.amqp.errors import display_url, translate
from transports.amqp.options import driver_kwargs
from transports.base import ConnectionParams

__all__ = ["AsyncAmqpConnection"]

logger = logging.getLogger(__name__)

_DEFAULT_FRAME_MAX = 131072
_MAX_CHANNELS = 65535
#: What we tell the broker we understand (py-amqp announces the same).
_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
}


class AsyncAmqpConnection(base_aio.AsyncTransportConnection):
    """One AMQP connection on an asyncio event loop.

    Constructed unconnected by the transport's ``connect``, which then
    awaits :meth:`open`.
    """

    def __init__(
        self,
        params: ConnectionParams,
        *,
        on_blocked: Callable[[str], None] | None = None,
        on_unblocked: Callable[[], None] | None = None,
        on_lost: base_aio.LostCallback | None = None,
    ) -> None:
        self.params = params
        self._tls = tls_settings(params.ssl, params.hostname)
        self._options = driver_kwargs(params, self._tls)  # validates before any I/O
        self.display_url = display_url(
            params.hostname, params.port, params.userid or "guest", params.virtual_host,
            tls=self._tls is not None,
        )  # fmt: skip
        self._on_blocked = on_blocked
        self._on_unblocked = on_unblocked
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._protocol = AmqpProtocol(self, self._loop)
        self.encoder = FrameEncoder(self._protocol.write, _DEFAULT_FRAME_MAX)
        self._channels: dict[int, AsyncAmqpChannel] = {}
        self._channel_max = _MAX_CHANNELS
        self._next_id = 1
        self._heartbeat = 0.0
        self._server_properties: Mapping[str, Any] = {}
        self._blocked = False
        self._open = False
        self._closing = False
        self._failure: BrokerError | None = None
        # channel 0 replies during the handshake and close
        self._expected: tuple[frozenset[tuple[int, int]], asyncio.Future[Any]] | None = None
        self._next_event = NextEvent()

    # -- opening --------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, log in and open the virtual host within ``connect_timeout`` in total."""
        timeout = self.params.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._open_link()
        except BaseException as exc:
            self.teardown()
            if isinstance(exc, BrokerError):
                raise
            if isinstance(exc, TimeoutError):
                raise RecoverableConnectionError(
                    f"could not connect to {self.display_url}: timed out after {timeout:g} s"
                ) from None
            if isinstance(exc, OSError):
                raise translate(exc, self.display_url, connecting=True) from exc
            raise
        self._open = True
        self._protocol.start_heartbeats(self._heartbeat)
        logger.debug("connected to %s (heartbeat=%s)", self.display_url, self._heartbeat)

    async def _open_link(self) -> None:
        options = self._options
        host, _, port = options["host"].rpartition(":")
        await self._loop.create_connection(
            lambda: self._protocol,
            host.strip("[]"),
            int(port),
            ssl=options["tls_context"],
            server_hostname=options["server_hostname"],
        )
        start = await self._expect(spec.Connection.Start)
        _major, _minor, server_properties, mechanisms, _locales = start
        self._server_properties = server_properties
        mechanism, response = self._login(mechanisms)
        client_properties = dict(options["client_properties"])
        client_properties["capabilities"] = {
            **_CAPABILITIES, **client_properties.get("capabilities", {})
        }  # fmt: skip
        self.encoder.method(
            0, spec.Connection.StartOk, "FsSs", (client_properties, mechanism, response, "en_US")
        )
        channel_max, frame_max, server_heartbeat = await self._expect(spec.Connection.Tune)
        self._tune(channel_max, frame_max, server_heartbeat)
        self.encoder.method(
            0, spec.Connection.TuneOk, "BlB",
            (self._channel_max, self.encoder.frame_max, int(self._heartbeat)),
        )  # fmt: skip
        self.encoder.method(0, spec.Connection.Open, "ssb", (options["virtual_host"], "", False))
        await self._expect(spec.Connection.OpenOk)

    def _login(self, offered: str | bytes) -> tuple[str, bytes]:
        options = self._options
        userid, password = options["userid"], options["password"]
        if isinstance(offered, bytes):
            offered = offered.decode(errors="replace")
        names = set(offered.split())
        method = options["login_method"] or ("PLAIN" if "PLAIN" in names else "AMQPLAIN")
        if method == "PLAIN":
            return method, sasl.PLAIN(userid, password).start(None)
        if method == "AMQPLAIN":
            return method, sasl.AMQPLAIN(userid, password).start(None)
        if method == "EXTERNAL":
            return method, sasl.EXTERNAL().start(None)
        raise ConfigurationError(
            f"login_method {method!r} is not supported by the asyncio transport; "
            f"use PLAIN, AMQPLAIN or EXTERNAL"
        )

    def _tune(self, channel_max: int, frame_max: int, server_heartbeat: int) -> None:
        options = self._options
        wanted_channels = options["wanted_channel_max"] or _MAX_CHANNELS
        self._channel_max = min(channel_max or _MAX_CHANNELS, wanted_channels)
        wanted_frame = options["wanted_frame_max"] or _DEFAULT_FRAME_MAX
        self.encoder.frame_max = min(frame_max or wanted_frame, wanted_frame)
        wanted_beat = options["heartbeat"]
        # Off when we ask for 0; otherwise the smaller of the two (the broker's 0 means "any").
        self._heartbeat = float(
            0 if not wanted_beat else min(wanted_beat, server_heartbeat or wanted_beat)
        )

    async def _expect(self, method_sig: tuple[int, int]) -> tuple[Any, ...]:
        future: asyncio.Future[tuple[Any, ...]] = self._loop.create_future()
        self._expected = (frozenset({method_sig}), future)
        try:
            return await future
        finally:
            self._expected = None

    # -- state ----------------------------------------------------------------------

    @property
    def protocol(self) -> AmqpProtocol:
        """The asyncio protocol underneath (for this transport's channels)."""
        return self._protocol

    @property
    def is_open(self) -> bool:
        """True from the end of the handshake until closed or broken."""
        return self._open and not self._protocol.closed

    @property
    def heartbeat(self) -> float:
        """The negotiated heartbeat interval in seconds (0: off)."""
        return self._heartbeat

    @property
    def server_properties(self) -> Mapping[str, Any]:
        """The broker's ``connection.start`` properties."""
        return self._server_properties

    @property
    def frame_max(self) -> int:
        """The negotiated maximum frame size."""
        return self.encoder.frame_max

    @property
    def is_blocked(self) -> bool:
        """True between ``connection.blocked`` and ``connection.unblocked``."""
        return self._blocked

    @property
    def failure(self) -> BrokerError | None:
        """The connection-level error that broke the link, if one did."""
        return self._failure

    def verify(self) -> bool:
        """False once the link is known dead (no I/O)."""
        return self.is_open

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        blocked = " blocked" if self._blocked else ""
        return (
            f"<AsyncAmqpConnection {self.display_url} {state}{blocked} "
            f"channels={len(self._channels)} heartbeat={self._heartbeat:g}>"
        )

    # -- channels and events ----------------------------------------------------------

    async def channel(self, owner: object | None = None) -> AsyncAmqpChannel:
        """Open a new channel.

        Raises:
            broker.errors.ChannelLimitExceeded: ``channel_max`` channels are open.
        """
        self._require_open()
        channel_id = self._free_channel_id()
        chan = AsyncAmqpChannel(self, channel_id, owner)
        self._channels[channel_id] = chan
        try:
            await chan.open()
        except BaseException:
            self._channels.pop(channel_id, None)
            raise
        return chan

    def _free_channel_id(self) -> int:
        limit = self._channel_max
        if len(self._channels) >= limit:
            raise ChannelLimitExceeded(f"all {limit} channels of {self.display_url} are in use")
        channel_id = self._next_id
        while channel_id in self._channels:
            channel_id = channel_id % limit + 1
        self._next_id = channel_id % limit + 1
        return channel_id

    def forget_channel(self, channel_id: int) -> None:
        """A channel closed: its number is free again."""
        self._channels.pop(channel_id, None)

    async def drain_events(self, timeout: float | None = None) -> None:
        """Wait until the next event was dispatched (see the contract)."""
        self._require_open()
        await self._next_event.wait(timeout, self.display_url)

    # -- incoming (FrameSink) -----------------------------------------------------------

    def on_method(self, channel: int, method_sig: tuple[int, int], buf: bytes, msg: Any) -> None:
        """Route one incoming method to its channel, or handle it here (channel 0)."""
        if channel:
            chan = self._channels.get(channel)
            if chan is not None:
                chan.dispatch(method_sig, buf, msg)
        else:
            self._connection_method(method_sig, arguments(method_sig, buf))
        if self._next_event.awaited:
            self._next_event.happened()

    def _connection_method(self, method_sig: tuple[int, int], args: tuple[Any, ...]) -> None:
        expected = self._expected
        if expected is not None and method_sig in expected[0]:
            if not expected[1].done():
                expected[1].set_result(args)
        elif method_sig == spec.Connection.Close:
            self._closed_by_broker(args)
        elif method_sig == spec.Connection.Blocked:
            self._blocked = True
            reason = args[0] if args else ""
            logger.info("%s blocked this connection: %s", self.display_url, reason)
            if self._on_blocked is not None:
                self._on_blocked(reason)
        elif method_sig == spec.Connection.Unblocked:
            self._blocked = False
            logger.info("%s unblocked this connection", self.display_url)
            if self._on_unblocked is not None:
                self._on_unblocked()

    def _closed_by_broker(self, args: tuple[Any, ...]) -> None:
        code, text, class_id, method_id = args
        driver_error = error_for_code(code, text, (class_id, method_id), DriverConnectionError)
        error = translate(
            driver_error, self.display_url, connecting=not self._open, connection_lost=True
        )
        with contextlib.suppress(Exception):
            self.encoder.method(0, spec.Connection.CloseOk)
        self._fail(error)
        expected = self._expected
        if expected is not None and not expected[1].done():
            expected[1].set_exception(error)
        self._protocol.close()

    def on_link_lost(self, exc: BaseException | None) -> None:
        """The socket is gone: fail every waiter, tell the owner unless we closed it."""
        if self._failure is None and not self._closing:
            if isinstance(exc, BrokerError):
                error: BrokerError = exc
            elif exc is None:
                error = RecoverableConnectionError(
                    f"connection to {self.display_url} failed: the broker closed the connection"
                )
            else:
                error = translate(exc, self.display_url, connection_lost=True)
            self._fail(error)
        lost = self._failure or RecoverableConnectionError(
            f"connection to {self.display_url} is closed"
        )
        expected = self._expected
        if expected is not None and not expected[1].done():
            expected[1].set_exception(lost)
        for chan in list(self._channels.values()):
            chan.link_lost(lost)
        self._channels.clear()
        self._next_event.happened(lost)
        if not self._closing and self._open and self._on_lost is not None:
            self._open = False
            self._on_lost(lost)
        self._open = False

    def _fail(self, error: BrokerError) -> None:
        if self._failure is None:
            logger.debug("connection to %s failed: %s", self.display_url, error)
            self._failure = error

    def link_failed(self, err: BrokerError) -> None:
        """A channel found the link unusable: drop it (``on_lost`` follows)."""
        self._fail(err)
        self._protocol.abort(err)

    def _require_open(self) -> None:
        if not self.is_open:
            if isinstance(self._failure, BrokerConnectionError):
                raise RecoverableConnectionError(
                    f"connection to {self.display_url} is closed ({self._failure})"
                )
            raise RecoverableConnectionError(f"connection to {self.display_url} is closed")

    # -- closing ------------------------------------------------------------------------

    async def close(self, timeout: float = 2.0) -> None:
        """Close gracefully within ``timeout`` seconds, then drop the socket. Never raises."""
        if self._closing or self._protocol.closed:
            self.teardown()
            return
        self._closing = True
        try:
            if self._open:
                self.encoder.method(
                    0, spec.Connection.Close, "BsBB", (200, "Normal shutdown", 0, 0)
                )
                async with asyncio.timeout(max(timeout, 0.001)):
                    await self._expect(spec.Connection.CloseOk)
        except (BrokerError, TimeoutError, OSError) as exc:
            logger.debug("graceful close of %s failed: %r", self.display_url, exc)
        finally:
            self._protocol.close()
            self.teardown()

    def teardown(self) -> None:
        """Drop the socket at once. Safe to repeat."""
        self._closing = True
        self._open = False
        self._protocol.abort()
