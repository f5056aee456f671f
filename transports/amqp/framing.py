"""The connection's frame writer: each method's frames encoded apart, sent by whoever is free.

py-amqp encodes every method into one shared buffer and writes it, both under
one lock. With threads sharing the connection that lock is held across the
``sendall``, which lets go of the GIL: the writer then waits for the GIL to
come back (up to the interpreter's 5 ms switch interval, with other threads
busy) while every other writer waits for the lock -- measured with 32
threads publishing with confirms, a publish waited 5 ms on that lock on
average. So :func:`frame_writer` (py-amqp's ``frame_writer`` hook) encodes
each method (method, header and body frames, split at ``frame_max``) into
bytes of its own, outside any lock, and queues them; a thread that finds the
writing lock free sends everything queued in one write, and a thread that
finds it taken returns at once: the writer re-checks the queue after letting
go of the lock, so nothing queued is left behind. Frames of one method stay
together and each thread's stay in order. A failed send raises in the thread
that made it and marks the transport disconnected, as py-amqp's does; the
others find the connection broken on their next call.

:func:`encode` is also what the asyncio transport writes a publish with, and
:func:`property_list` the one cache of encoded property lists both share.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from struct import Struct
from typing import Any

from amqp.basic_message import Message
from amqp.serialization import dumps

__all__ = ["FrameWrite", "encode", "frame_writer", "property_list"]

#: ``write(type, channel, method_sig, args, content)``, as py-amqp calls its frame writer.
FrameWrite = Callable[[int, int, Any, Any, Any], None]

_FRAME_HEADER = Struct(">BHI")
_METHOD = Struct(">HH")
_CONTENT_HEADER = Struct(">HHQ")
_FLAGS = Struct(">H")
_END = b"\xce"


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return b"".join((_FRAME_HEADER.pack(kind, channel, len(payload)), payload, _END))


def encode(
    frame_max: int, kind: int, channel: int, method_sig: Any, args: Any, content: Any
) -> bytes:
    """The frames of one method (or a heartbeat) as py-amqp would send them."""
    if isinstance(args, str):
        args = args.encode("latin-1")
    payload = b"".join((_METHOD.pack(*method_sig), args or b"")) if kind == 1 else b""
    if content is None:
        return _frame(kind, channel, payload)
    body = content.body
    if isinstance(body, str):
        encoding = content.properties.setdefault("content_encoding", "utf-8")
        body = body.encode(encoding)
    listed = property_list(content.properties)
    header = _CONTENT_HEADER.pack(method_sig[0], 0, len(body)) + listed
    size = len(body)
    if 0 < size <= frame_max - 8:
        # A publish's usual shape, in one join: method, header and one body frame.
        pack = _FRAME_HEADER.pack
        return b"".join((
            pack(kind, channel, len(payload)), payload, _END,
            pack(2, channel, len(header)), header, _END,
            pack(3, channel, size), body, _END,
        ))  # fmt: skip
    frames = [_frame(kind, channel, payload), _frame(2, channel, header)]
    chunk = frame_max - 8
    for start in range(0, size, chunk):
        frames.append(_frame(3, channel, body[start : start + chunk]))
    return b"".join(frames)


#: Encoded property lists by ``tuple(properties.items())``: a producer sends the
#: same few properties with message after message. Bounded; emptied when full.
_ENCODED: dict[tuple[tuple[str, Any], ...], bytes] = {}
_ENCODED_MAX = 256
#: Property values a kept list may hold (a table cannot be a key; a datetime
#: timestamp differs with every message).
_PLAIN = (str, int, float, bytes, type(None))
_KINDS = Message.PROPERTIES


def property_list(properties: dict[str, Any]) -> bytes:
    """Basic properties as a content header frame carries them: flags, then values.

    Looked up first among the lists encoded before: equal properties encode
    equally, and most publishes repeat the last one's (``content_type``,
    ``content_encoding``, ``delivery_mode``). Lists holding anything but
    plain values are encoded every time.
    """
    try:
        key = tuple(properties.items())
        found = _ENCODED.get(key)
    except TypeError:  # an unhashable value: a headers table
        return _encode_properties(properties)
    if found is None:
        found = _encode_properties(properties)
        if all(type(value) in _PLAIN for value in properties.values()):
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[key] = found
    return found


def _encode_properties(present: dict[str, Any]) -> bytes:
    """Every 15 properties take a 16-bit word of flags (bit 15 first; bit 0 says
    another word follows); the values of the present ones follow in order.
    """
    shift, bits, words = 15, 0, []
    formats: list[str] = []
    values: list[Any] = []
    for name, kind in _KINDS:
        value = present.get(name)
        if value is not None:
            if shift == 0:
                words.append(bits)
                bits, shift = 0, 15
            bits |= 1 << shift
            if kind != "bit":
                formats.append(kind)
                values.append(value)
        shift -= 1
    words.append(bits)
    flags = b"".join(_FLAGS.pack(word) for word in words)
    listed: bytes = dumps("".join(formats), values)
    return flags + listed


def frame_writer(connection: Any, transport: Any) -> FrameWrite:
    """py-amqp's ``frame_writer`` hook: the writer of one connection (see the module docstring)."""
    write = transport.write
    queued: collections.deque[bytes] = collections.deque()
    sending = threading.Lock()

    def write_frame(kind: int, channel: int, method_sig: Any, args: Any, content: Any) -> None:
        queued.append(encode(connection.frame_max, kind, channel, method_sig, args, content))
        while queued and sending.acquire(False):
            try:
                pieces = [queued.popleft() for _ in range(len(queued))]
                write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            finally:
                sending.release()
        connection.bytes_sent += 1

    return write_frame
