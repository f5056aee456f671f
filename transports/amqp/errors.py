"""Translation of py-amqp and socket errors into :mod:`broker.errors`.

This is the only place that knows py-amqp's exception classes. The AMQP
transport wraps every call into the driver either with an
:class:`ErrorTranslator` (``with translator: ...``) or, on hot paths, with a
plain ``try``/``except DRIVER_ERRORS`` that calls :func:`translate`; both end
in ``raise Ours(...) from theirs``.

Messages name the broker as a masked URL (``amqp://guest:**@127.0.0.1:5672//``)
and never contain a password: py-amqp's and the broker's texts do not carry
credentials, and :func:`display_url` masks them.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from amqp import exceptions as amqp_exc

from broker.errors import (
    AccessRefused,
    AuthenticationError,
    BrokerError,
    ChannelError,
    HeartbeatTimeout,
    IrrecoverableChannelError,
    IrrecoverableConnectionError,
    MessageNacked,
    NotFound,
    PreconditionFailed,
    RecoverableChannelError,
    RecoverableConnectionError,
    TLSVerificationError,
)
from transports._shared.tls import hopeless_handshake
from transports.amqp.demux import ConnectionLost

__all__ = ["DRIVER_ERRORS", "ErrorTranslator", "display_url", "translate"]

#: Everything the driver may raise that must not escape ``transports/``.
#: ``OSError`` covers socket errors, ``socket.timeout`` and ``ssl.SSLError``.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    amqp_exc.AMQPError,
    amqp_exc.MessageNacked,
    OSError,
)

# py-amqp raises ConnectionForced with this text from heartbeat_tick().
_HEARTBEAT_MISSED = "Too many heartbeats missed"


def display_url(
    hostname: str, port: int, userid: str | None, virtual_host: str, *, tls: bool
) -> str:
    """The broker as a URL fit for messages and logs: the password is always ``**``.

    >>> display_url("127.0.0.1", 5672, "guest", "/", tls=False)
    'amqp://guest:**@127.0.0.1:5672//'
    """
    scheme = "amqps" if tls else "amqp"
    user = f"{quote(userid, safe='')}:**@" if userid else ""
    host = f"[{hostname}]" if ":" in hostname else hostname
    vhost = "/" if virtual_host == "/" else quote(virtual_host, safe="")
    return f"{scheme}://{user}{host}:{port}/{vhost}"


def translate(
    exc: BaseException,
    where: str,
    *,
    connecting: bool = False,
    connection_lost: bool = False,
    heartbeat: float = 0.0,
) -> BrokerError:
    """Map one driver exception to the matching :mod:`broker.errors` instance.

    Args:
        exc: what py-amqp or the socket layer raised.
        where: the masked broker URL, named in the message.
        connecting: the error happened while opening the connection; a 403
            then means the login was refused.
        connection_lost: the connection is gone, so a reply code that py-amqp
            models as a channel error (e.g. 403, 404) was connection-level.
        heartbeat: the negotiated heartbeat, quoted in heartbeat timeouts.

    Returns:
        The exception to raise (``raise translate(exc, ...) from exc``).
    """
    if isinstance(exc, ConnectionLost):
        # Another thread's read failed while this one waited: the same error, here.
        return translate(exc.original, where, connection_lost=True, heartbeat=heartbeat)
    if isinstance(exc, amqp_exc.AMQPError):
        return _translate_amqp(exc, where, connecting, connection_lost, heartbeat)
    if isinstance(exc, amqp_exc.MessageNacked):
        return MessageNacked(f"{where} negatively acknowledged a published message")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = (exc.verify_message or exc.reason or str(exc)).rstrip(".")
        return TLSVerificationError(
            f"TLS certificate verification failed for {where}: {reason}. "
            f"Check the CA certificates (ca_certs) and the host name the certificate was issued for"
        )
    hopeless = hopeless_handshake(exc, where)
    if hopeless is not None:  # e.g. amqps:// to a plain port: no retry can help
        return hopeless
    action = f"could not connect to {where}" if connecting else f"connection to {where} failed"
    if isinstance(exc, TimeoutError):
        return RecoverableConnectionError(f"{action}: timed out")
    if isinstance(exc, ssl.SSLError):
        return RecoverableConnectionError(f"{action}: TLS error: {exc.reason or exc}")
    if isinstance(exc, OSError):
        return RecoverableConnectionError(f"{action}: {_os_reason(exc)}")
    return IrrecoverableConnectionError(f"{action}: {type(exc).__name__}: {exc}")


def _os_reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _translate_amqp(
    exc: amqp_exc.AMQPError,
    where: str,
    connecting: bool,
    connection_lost: bool,
    heartbeat: float,
) -> BrokerError:
    code: int | None = exc.reply_code or None
    text = exc.reply_text or str(exc)
    method = exc.method_name or ""
    in_method = f" in {method}" if method else ""

    if isinstance(exc, amqp_exc.ConnectionForced) and text == _HEARTBEAT_MISSED:
        every = f" (heartbeat={heartbeat:g} s)" if heartbeat else ""
        return HeartbeatTimeout(
            f"{where} sent nothing for more than two heartbeat intervals{every}: "
            f"the broker or the network path is dead"
        )
    if code == 403 and connecting:
        return AuthenticationError(
            f"login to {where} refused: {text} Check the user name, password and login method",
            reply_code=code,
        )
    if isinstance(exc, amqp_exc.ChannelError) and not connection_lost:
        return _channel_error(exc, code, f"{text} (reply code {code}{in_method} on {where})")

    if connecting and "auth mechanism" in text:
        return AuthenticationError(f"cannot log in to {where}: {text}")
    if code is None:  # raised by py-amqp itself (e.g. "connection already closed")
        message = f"connection to {where} failed: {text}"
    else:
        message = f"{where} closed the connection: {text} (reply code {code}{in_method})"
    if isinstance(exc, amqp_exc.RecoverableConnectionError | amqp_exc.RecoverableChannelError):
        return RecoverableConnectionError(message, reply_code=code)
    if isinstance(exc, amqp_exc.InternalError):
        # RabbitMQ closes a connection with 541 when a process of it died on the broker's
        # side -- as the channels of quorum queue consumers do while their node shuts down
        # in a rolling restart: a reconnect, to another node or to this one back, can help.
        return RecoverableConnectionError(message, reply_code=code)
    return IrrecoverableConnectionError(message, reply_code=code)


def _channel_error(exc: amqp_exc.ChannelError, code: int | None, message: str) -> ChannelError:
    if isinstance(exc, amqp_exc.NotFound):
        return NotFound(message, reply_code=code)
    if isinstance(exc, amqp_exc.PreconditionFailed):
        return PreconditionFailed(message, reply_code=code)
    if isinstance(exc, amqp_exc.AccessRefused):
        return AccessRefused(message, reply_code=code)
    if isinstance(exc, amqp_exc.RecoverableChannelError):
        return RecoverableChannelError(message, reply_code=code)
    return IrrecoverableChannelError(message, reply_code=code)


class ErrorTranslator:
    """A reusable context manager translating driver errors raised in its body.

    One instance lives as long as its connection (or channel), so entering it
    allocates nothing. ``after`` runs with the translated error before it is
    raised (the owner tears down a dead connection or marks a channel closed).

    Example::

        with self._errors:
            ok = self._channel.queue_declare(queue=name, passive=True)
    """

    __slots__ = ("_after", "_is_lost", "connecting", "heartbeat", "where")

    def __init__(
        self,
        where: str,
        *,
        is_lost: Callable[[], bool] | None = None,
        after: Callable[[BrokerError], None] | None = None,
    ) -> None:
        self.where = where
        self.connecting = False
        self.heartbeat = 0.0
        self._is_lost = is_lost
        self._after = after

    def error_for(self, exc: BaseException) -> BrokerError:
        """Translate ``exc`` and run the ``after`` hook; the caller raises the result."""
        lost = self._is_lost() if self._is_lost is not None else False
        err = translate(
            exc,
            self.where,
            connecting=self.connecting,
            connection_lost=lost,
            heartbeat=self.heartbeat,
        )
        if self._after is not None:
            self._after(err)
        return err

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, DRIVER_ERRORS):
            return False
        raise self.error_for(exc) from exc

    def __repr__(self) -> str:
        return f"<ErrorTranslator {self.where}>"
