"""py-amqp's frame codec, driven by an asyncio protocol instead of a socket.

Decoding: :class:`FrameDecoder` cuts received bytes into frames and hands
each to py-amqp's ``frame_handler``, which gathers a content method's header
and body frames into one ``amqp.Message`` and calls back with
``(channel_id, method_sig, args_buffer, message)``; :func:`arguments` decodes
a method's arguments by the format of :data:`INCOMING`.

Encoding: :class:`FrameEncoder` packs a method frame itself and wraps
py-amqp's ``frame_writer`` for methods with content, which packs the method
and its content into one buffer and writes it in one call: the frames of one
publish are never split by another task's frames. That writer owns a buffer
of ``frame_max`` bytes (128 KB), so it is made on the first content method:
a connection that never publishes (an idle one in a pool) never holds it.
Publishing is the hot path, and most of py-amqp's cost there is encoding the
same few properties again for every message; :meth:`FrameEncoder.publish`
keeps the encoded property list of each set of plain properties (encoded once
by ``frame_writer`` itself) and packs the three frames around it.

Only public py-amqp functions are used (``amqp.method_framing``,
``amqp.serialization``, ``amqp.spec``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from amqp import spec
from amqp.basic_message import Message
from amqp.method_framing import frame_handler, frame_writer
from amqp.serialization import dumps, loads

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
_CONTENT_HEADER = struct.Struct(">HHQ")
_FRAME_END = bytes([FRAME_END])
_BASIC_CLASS = spec.Basic.CLASS_ID
_PUBLISH_METHOD = struct.pack(">HH", *spec.Basic.Publish)
_METHOD_ID = struct.Struct(">HH")  # class id, method id: what a method frame's payload starts with
#: frame_max of the throw-away writer that encodes a property list (its buffer's size).
_SMALL_FRAME_MAX = 4096
#: Encoded property lists kept (one per distinct set of plain properties, mostly a handful).
_PROPERTIES_CACHE_SIZE = 256
#: Property values that can be part of a cache key (a table cannot).
_PLAIN = (str, int, float, bytes, type(None))


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


class _Capture:
    """A ``transport`` for ``frame_writer`` that keeps what it writes."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: Any) -> None:
        self.data += bytes(data)


class FrameEncoder:
    """Methods and messages in, frames out: ``write(data)`` gets each method's frames at once."""

    __slots__ = ("_counters", "_properties", "_write_frame", "write")

    def __init__(self, write: Callable[[Any], None], frame_max: int) -> None:
        self.write = write
        self._counters = _Counters(frame_max)
        self._write_frame: Callable[..., Any] | None = None  # made on the first content method
        self._properties: dict[tuple[tuple[str, Any], ...], bytes] = {}

    @property
    def frame_max(self) -> int:
        """The largest frame written, as tuned with the broker."""
        return self._counters.frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self._counters.frame_max = value

    def method(
        self, channel: int, method_sig: tuple[int, int], fmt: str = "", values: Any = ()
    ) -> None:
        """Write one method frame (arguments encoded by ``fmt``)."""
        payload = _METHOD_ID.pack(*method_sig) + (dumps(fmt, values) if fmt else b"")
        self.write(b"".join((_HEADER.pack(1, channel, len(payload)), payload, _FRAME_END)))

    def content(self, channel: int, method_sig: tuple[int, int], args: bytes, message: Any) -> None:
        """Write a method with content (method, header and body frames) in one write."""
        write_frame = self._write_frame
        if write_frame is None:
            write_frame = self._write_frame = frame_writer(self._counters, self)
        write_frame(1, channel, method_sig, args, message)

    def publish(self, channel: int, args: bytes, message: OutgoingMessage) -> None:
        """Write a ``basic.publish`` of ``message`` (``args``: its encoded arguments) at once."""
        body, properties = message.body, message.properties
        key = tuple(properties.items())
        try:
            encoded = self._properties.get(key)
        except TypeError:  # a table (headers) among the values: not cacheable
            encoded = None
        if encoded is None:
            if not all(type(value) in _PLAIN for value in properties.values()):
                self.content(channel, spec.Basic.Publish, args, _py_amqp_message(message))
                return
            encoded = self._encode_properties(properties)
            if len(self._properties) >= _PROPERTIES_CACHE_SIZE:
                self._properties.clear()
            self._properties[key] = encoded
        size = len(body)
        if size + len(args) + len(encoded) + 64 > self._counters.frame_max:
            # Several body frames: py-amqp's writer splits them.
            self.content(channel, spec.Basic.Publish, args, _py_amqp_message(message))
            return
        method = _PUBLISH_METHOD + args
        header = _CONTENT_HEADER.pack(_BASIC_CLASS, 0, size) + encoded
        pack = _HEADER.pack
        self.write(
            b"".join((
                pack(1, channel, len(method)), method, _FRAME_END,
                pack(2, channel, len(header)), header, _FRAME_END,
                pack(3, channel, size), body, _FRAME_END,
            ))
        )  # fmt: skip

    def _encode_properties(self, properties: dict[str, Any]) -> bytes:
        """py-amqp's encoding of a property list: what its own writer puts in a header frame."""
        capture = _Capture()
        # A small frame_max keeps the writer's buffer small; a property list longer
        # than it is written the same, as separate frames.
        frame_writer(_Counters(_SMALL_FRAME_MAX), capture)(
            1, 0, spec.Basic.Publish, b"", _py_amqp_message(OutgoingMessage(b"", properties))
        )
        data = capture.data
        _, _, method_size = _HEADER.unpack_from(data, 0)
        header_at = 8 + method_size
        _, _, header_size = _HEADER.unpack_from(data, header_at)
        # A header frame's payload: class id, weight, body size (12 bytes), then the list.
        return data[header_at + 7 + 12 : header_at + 7 + header_size]


def _py_amqp_message(message: OutgoingMessage) -> Message:
    return Message(message.body, **message.properties)
