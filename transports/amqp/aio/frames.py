"""py-amqp's frame codec, driven by an asyncio protocol instead of a socket.

Decoding: :class:`FrameDecoder` cuts received bytes into frames and hands
each to py-amqp's ``frame_handler``, which gathers a content method's header
and body frames into one ``amqp.Message`` and calls back with
``(channel_id, method_sig, args_buffer, message)``; :func:`arguments` decodes
a method's arguments by the format of :data:`INCOMING`.

Encoding: :class:`FrameEncoder` packs a method frame itself, and a publish
(method, header and body frames) with the synchronous transport's
:func:`transports.amqp.framing.encode`, in one write: the frames of one
publish are never split by another task's frames. Publishing is the hot
path, and most of py-amqp's cost there is encoding the same few properties
again for every message; :func:`~transports.amqp.framing.property_list`
keeps the encoded list of each set of plain properties, for both transports.

Only public py-amqp functions are used (``amqp.method_framing``,
``amqp.serialization``, ``amqp.spec``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from amqp import spec
from amqp.method_framing import frame_handler
from amqp.serialization import dumps, loads

from transports.amqp.framing import encode

__all__ = [
    "FRAME_END",
    "HEARTBEAT_FRAME",
    "INCOMING",
    "PROTOCOL_HEADER",
    "FrameDecoder",
    "FrameEncoder",
    "MethodCallback",
    "OutgoingMessage",
    "arguments",
    "method_name",
]

#: What a client sends first: AMQP 0-9-1.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

#: ``callback(channel_id, method_sig, args_buffer, message_or_None)``.
MethodCallback = Callable[[int, tuple[int, int], bytes, Any], None]

#: Argument formats (py-amqp's notation) of the methods a broker sends.
INCOMING: dict[tuple[int, int], str] = {
    spec.Connection.Start: "ooFSS",
    spec.Connection.Secure: "s",
    spec.Connection.Tune: "BlB",
    spec.Connection.OpenOk: "",
    spec.Connection.Close: "BsBB",
    spec.Connection.CloseOk: "",
    spec.Connection.Blocked: "s",
    spec.Connection.Unblocked: "",
    spec.Channel.OpenOk: "",
    spec.Channel.Flow: "b",
    spec.Channel.FlowOk: "b",
    spec.Channel.Close: "BsBB",
    spec.Channel.CloseOk: "",
    spec.Exchange.DeclareOk: "",
    spec.Exchange.DeleteOk: "",
    spec.Exchange.BindOk: "",
    spec.Exchange.UnbindOk: "",
    spec.Queue.DeclareOk: "sll",
    spec.Queue.BindOk: "",
    spec.Queue.UnbindOk: "",
    spec.Queue.PurgeOk: "l",
    spec.Queue.DeleteOk: "l",
    spec.Basic.QosOk: "",
    spec.Basic.ConsumeOk: "s",
    spec.Basic.Cancel: "sb",
    spec.Basic.CancelOk: "s",
    spec.Basic.Return: "Bsss",
    spec.Basic.Deliver: "sLbss",
    spec.Basic.GetOk: "Lbssl",
    spec.Basic.GetEmpty: "s",
    spec.Basic.Ack: "Lb",
    spec.Basic.Nack: "Lbb",
    spec.Basic.RecoverOk: "",
    spec.Confirm.SelectOk: "",
}

_HEADER = struct.Struct(">BHI")
_FRAME_END = bytes([FRAME_END])
_METHOD_ID = struct.Struct(">HH")  # class id, method id: what a method frame's payload starts with


_NAMES = {
    sig: f"{cls.__name__.lower()}.{name[0].lower()}{name[1:]}"
    for cls in (spec.Connection, spec.Channel, spec.Exchange, spec.Queue, spec.Basic, spec.Confirm)
    for name, sig in vars(cls).items()
    if isinstance(sig, tuple)
}


def method_name(method_sig: tuple[int, int]) -> str:
    """``'queue.declareOk'``-style name of a method, for messages."""
    return _NAMES.get(method_sig, str(method_sig))


def arguments(method_sig: tuple[int, int], buf: bytes) -> tuple[Any, ...]:
    """Decode the arguments of an incoming method (after its 4-byte class/method ids).

    A method the table does not know, or a short buffer (RabbitMQ omits
    ``connection.blocked``'s reason in old versions), decodes to ``()``.
    """
    fmt = INCOMING.get(method_sig, "")
    if not fmt or len(buf) <= 4:
        return ()
    values, _ = loads(fmt, buf, 4)
    return tuple(values)


class _Counters:
    """What py-amqp's frame functions read and count on their ``connection`` argument."""

    __slots__ = ("bytes_recv", "bytes_sent", "frame_max")

    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_recv = 0
        self.bytes_sent = 0


class FrameDecoder:
    """Received bytes in, methods out (through py-amqp's ``frame_handler``).

    Raises from :meth:`feed`: ``ValueError`` for a malformed frame, and
    py-amqp's ``UnexpectedFrame`` for frames out of order; either way the
    connection is unusable.
    """

    __slots__ = ("_buffer", "_counters", "_on_frame")

    def __init__(self, callback: MethodCallback) -> None:
        self._buffer = bytearray()
        self._counters = _Counters(0)
        self._on_frame = frame_handler(self._counters, callback)

    def feed(self, data: bytes) -> int:
        """Take ``data``; dispatch every complete frame. Returns how many frames that was."""
        buf = self._buffer
        buf += data
        end = len(buf)
        pos = 0
        count = 0
        on_frame = self._on_frame
        unpack = _HEADER.unpack_from
        while end - pos >= 8:
            frame_type, channel, size = unpack(buf, pos)
            stop = pos + 7 + size
            if stop >= end:
                break
            if buf[stop] != FRAME_END:
                raise ValueError(f"frame end byte missing (got {buf[stop]:#x})")
            payload = bytes(buf[pos + 7 : stop])
            pos = stop + 1
            count += 1
            on_frame((frame_type, channel, payload))
        if pos:
            del buf[:pos]
        return count


class OutgoingMessage:
    """A message to publish: a body and AMQP basic properties by py-amqp name."""

    __slots__ = ("body", "properties")

    def __init__(self, body: bytes, properties: dict[str, Any]) -> None:
        self.body = body
        self.properties = properties

    def __repr__(self) -> str:
        return f"<OutgoingMessage size={len(self.body)} properties={self.properties!r}>"


class FrameEncoder:
    """Methods and messages in, frames out: ``write(data)`` gets each method's frames at once.

    Attributes:
        frame_max: the largest frame written, as tuned with the broker.
    """

    __slots__ = ("frame_max", "write")

    def __init__(self, write: Callable[[Any], None], frame_max: int) -> None:
        self.write = write
        self.frame_max = frame_max

    def method(
        self, channel: int, method_sig: tuple[int, int], fmt: str = "", values: Any = ()
    ) -> None:
        """Write one method frame (arguments encoded by ``fmt``)."""
        payload = _METHOD_ID.pack(*method_sig) + (dumps(fmt, values) if fmt else b"")
        self.write(b"".join((_HEADER.pack(1, channel, len(payload)), payload, _FRAME_END)))

    def publish(self, channel: int, args: bytes, message: OutgoingMessage) -> None:
        """Write a ``basic.publish`` of ``message`` (``args``: its encoded arguments) at once."""
        self.write(encode(self.frame_max, 1, channel, spec.Basic.Publish, args, message))
