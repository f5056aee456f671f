"""Every private py-amqp member the AMQP transport relies on, and the only code touching them.

py-amqp has no public way to do a few things the transport needs: refuse to
reconnect behind our back, count the channel ids in use, lower the broker's
``channel_max``/``frame_max``, keep a channel the broker closed closed, wrap
TLS with a given context, see a partially read frame, and hold outgoing
frames back. Each of those reaches below py-amqp's public API, and all of
them are here, so that an upgrade of py-amqp has one module to check:

* three adapter base classes give the private hooks the transport overrides
  public names, by default doing what py-amqp does
  (:class:`ConnectionAdapter`, :class:`ChannelAdapter`,
  :class:`SSLTransportAdapter`; :mod:`transports.amqp.driver` subclasses
  them);
* :func:`take_unread_input`, :class:`RawReads` and :class:`RawWrites` read
  and swap private attributes of py-amqp's socket transports;
* :func:`outgoing_message` makes a py-amqp message, setting what its
  constructors would.

:data:`PRIVATE_MEMBERS` lists each member with the py-amqp code that uses it;
:func:`missing_members` names those the installed py-amqp no longer has
(``tests/unit/test_pyamqp_internals.py`` fails on any). ``pyproject.toml``
pins ``amqp`` to the release series they were checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import amqp
from amqp.serialization import GenericContent
from amqp.transport import SSLTransport, TCPTransport

from transports._shared.fence import PrivateMember
from transports._shared.fence import missing_members as _missing

__all__ = [
    "PRIVATE_MEMBERS",
    "ChannelAdapter",
    "ConnectionAdapter",
    "PrivateMember",
    "RawReads",
    "RawWrites",
    "SSLTransportAdapter",
    "missing_members",
    "outgoing_message",
    "take_unread_input",
]


PRIVATE_MEMBERS: tuple[PrivateMember, ...] = (
    PrivateMember(
        amqp.Connection, "_transport", "collect",
        "the socket transport without py-amqp's reconnecting getter",
    ),
    PrivateMember(
        amqp.Connection, "_used_channel_ids", "_get_free_channel_id",
        "the number of channels open, to refuse one over channel_max with our error",
    ),
    PrivateMember(
        amqp.Connection, "_on_tune", "_setup_listeners",
        "hook: lower the broker's channel_max and frame_max to ours",
    ),
    PrivateMember(
        amqp.Channel, "_do_revive", "_on_close",
        "hook: a channel the broker closed with an error is not opened again",
    ),
    PrivateMember(
        TCPTransport, "_read_buffer", "_read",
        "bytes of a partly read frame, taken over by the buffered reads",
    ),
    PrivateMember(
        TCPTransport, "_write", "write",
        "the raw socket write, diverted while frames are held for pipelining",
    ),
    PrivateMember(
        SSLTransport, "_write", "write",
        "the raw TLS write, diverted while frames are held for pipelining",
    ),
    PrivateMember(
        SSLTransport, "_setup_transport", "_init_socket",
        "hook: wrap the socket with our TLS context, handshake within the deadline",
    ),
    PrivateMember(
        SSLTransport, "_shutdown_transport", "close",
        "hook: skip the TLS close_notify exchange, which can block on a dead peer",
    ),
    PrivateMember(
        SSLTransport, "_quick_recv", "_read",
        "the TLS socket's read, set up by _setup_transport; replaced by buffered reads",
    ),
    PrivateMember(
        TCPTransport, "_quick_recv", "_read",
        "the socket's recv, replaced by buffered reads bounded by a deadline",
    ),
    PrivateMember(
        GenericContent, "_pending_chunks", "__init__",
        "set when a message is made without its constructors' keyword passing",
    ),
)  # fmt: skip


def missing_members() -> list[str]:
    """Each member of :data:`PRIVATE_MEMBERS` the installed py-amqp lacks, and why it matters."""
    return _missing(PRIVATE_MEMBERS)


# -- adapters: private hooks under public names ------------------------------------------


class ConnectionAdapter(amqp.Connection):
    """py-amqp's ``Connection`` with the private members the transport needs made public."""

    @property
    def transport(self) -> Any:
        """The socket transport; raises, where py-amqp would reconnect, once it is gone.

        Reconnecting (and to which host) is for brokerpool's failover to decide.
        """
        transport = self._transport
        if transport is None:
            raise amqp.RecoverableConnectionError("connection already closed")
        return transport

    @transport.setter
    def transport(self, transport: Any) -> None:
        self._transport = transport

    @property
    def current_transport(self) -> Any:
        """The socket transport, or ``None`` once the connection was collected."""
        return self._transport

    @property
    def channels_in_use(self) -> int:
        """How many channel ids are taken."""
        return len(self._used_channel_ids)

    def _on_tune(
        self, channel_max: int, frame_max: int, server_heartbeat: int, argsig: str = "BlB"
    ) -> None:
        channel_max, frame_max = self.tune_limits(channel_max, frame_max)
        super()._on_tune(channel_max, frame_max, server_heartbeat, argsig)

    def tune_limits(self, channel_max: int, frame_max: int) -> tuple[int, int]:
        """The ``(channel_max, frame_max)`` to accept, given the broker's ``connection.tune``.

        py-amqp takes the broker's values as they are.
        """
        return channel_max, frame_max


class ChannelAdapter(amqp.Channel):
    """py-amqp's ``Channel`` with its revive hook under a public name."""

    def _do_revive(self) -> None:
        self.after_broker_close()

    def after_broker_close(self) -> None:
        """Run after the broker closed this channel with an error (close-ok already sent).

        py-amqp opens the channel again.
        """
        super()._do_revive()


class SSLTransportAdapter(SSLTransport):
    """py-amqp's TLS transport with its setup and shutdown hooks under public names."""

    def _setup_transport(self) -> None:
        self.setup_tls()
        # py-amqp reads through _quick_recv, pointed at the TLS socket's read.
        self._quick_recv = self.sock.read

    def setup_tls(self) -> None:
        """Wrap the connected socket (``self.sock``) in TLS and do the handshake.

        py-amqp wraps with the options given as ``ssl=``.
        """
        super()._setup_transport()

    def _shutdown_transport(self) -> None:
        self.before_close()

    def before_close(self) -> None:
        """Run before the socket is shut down; py-amqp ends the TLS session (``unwrap``)."""
        super()._shutdown_transport()


# -- socket transports ---------------------------------------------------------------------


_new_message = amqp.Message.__new__


def outgoing_message(body: bytes, properties: dict[str, Any]) -> amqp.Message:
    """``amqp.Message(body, **properties)``, taking ``properties`` as it is (the caller's own dict).

    The two constructors, with a keyword dict unpacked and packed again on the
    way, cost about as much as encoding the message's frames.
    """
    message = _new_message(amqp.Message)
    message.frame_method = None
    message.frame_args = None
    message.properties = properties
    message._pending_chunks = []
    message.body_received = 0
    message.body_size = 0
    message.ready = False
    message.delivery_info = None
    message.body = body
    message.channel = None
    return message


def take_unread_input(transport: Any) -> bytes:
    """Take the bytes of a frame ``transport`` read only in part (``poll`` cannot see them)."""
    data = bytes(transport._read_buffer)
    transport._read_buffer = b""
    return data


class RawWrites:
    """Sends a py-amqp socket transport's raw writes to ``write`` until :meth:`restore`.

    ``transport.write`` (used for every frame) calls the transport's
    ``_write``: on TCP an instance attribute (the socket's ``sendall``), on
    TLS a method of the class.

    Args:
        transport: a connected py-amqp socket transport.
        write: takes each piece of data instead.

    Attributes:
        original: the transport's own raw write, to send what ``write`` collects.
    """

    __slots__ = ("_instance_level", "_transport", "_write", "original")

    def __init__(self, transport: Any, write: Callable[[Any], None]) -> None:
        self._transport = transport
        self._write = write
        self.original: Callable[[Any], None] = transport._write
        self._instance_level = "_write" in vars(transport)
        transport._write = write

    def restore(self) -> None:
        """Give the transport its own raw write back (unless someone replaced ``write`` since)."""
        transport = self._transport
        if transport._write != self._write:
            return
        if self._instance_level:
            transport._write = self.original
        else:
            del transport._write

    def __repr__(self) -> str:
        return f"<RawWrites of {self._transport!r} to {self._write!r}>"


class RawReads:
    """Sends a py-amqp socket transport's receive calls to ``recv`` until :meth:`restore`.

    py-amqp's ``_read`` receives through the transport's ``_quick_recv``, an
    instance attribute set when the socket is set up (``sock.recv``, or the
    TLS socket's ``read``).

    Args:
        transport: a connected py-amqp socket transport.
        recv: takes each ``recv(n)`` instead.
    """

    __slots__ = ("_original", "_recv", "_transport")

    def __init__(self, transport: Any, recv: Callable[[int], bytes]) -> None:
        self._transport = transport
        self._recv = recv
        self._original: Callable[[int], bytes] = transport._quick_recv
        transport._quick_recv = recv

    def restore(self) -> None:
        """Give the transport its own receive function back (unless replaced since)."""
        if self._transport._quick_recv == self._recv:
            self._transport._quick_recv = self._original

    def __repr__(self) -> str:
        return f"<RawReads of {self._transport!r} to {self._recv!r}>"
