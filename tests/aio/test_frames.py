"""The asyncio AMQP transport's codec (no broker): py-amqp's frames, cut and joined by us."""

from __future__ import annotations

from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from transports.amqp.aio.frames import FrameDecoder, FrameEncoder, OutgoingMessage

ARGS = dumps("Bssbb", (0, "ex", "rk", False, False))


def _frames_of(write: Any) -> bytes:
    out = bytearray()
    write(FrameEncoder(out.extend, 131072))
    return bytes(out)


def _py_amqp_frames(
    channel: int, method_sig: tuple[int, int], args: bytes, message: amqp.Message
) -> bytes:
    """What py-amqp's own writer sends for a method with content."""
    out = bytearray()

    class Transport:
        def write(self, data: Any) -> None:
            out.extend(data)

    class Connection:
        frame_max = 131072
        bytes_sent = 0

    frame_writer(Connection(), Transport())(1, channel, method_sig, args, message)
    return bytes(out)


@pytest.mark.parametrize(
    "properties",
    [
        {"content_type": "application/data", "content_encoding": "binary", "delivery_mode": 2},
        {"content_type": "text/plain", "message_id": "m-1", "priority": 5, "timestamp": 17},
        {"content_type": "application/json", "application_headers": {"a": [1, {"b": 2}]}},
        {},
    ],
)
def test_a_publish_is_written_exactly_as_py_amqp_writes_it(properties: dict[str, Any]) -> None:
    body = b"x" * 100
    ours = _frames_of(lambda e: e.publish(3, ARGS, OutgoingMessage(body, dict(properties))))
    theirs = _py_amqp_frames(3, spec.Basic.Publish, ARGS, amqp.Message(body, **properties))
    assert ours == theirs
    again = _frames_of(lambda e: [e.publish(3, ARGS, OutgoingMessage(body, dict(properties)))] * 2)
    assert again == theirs  # the cached property list gives the same bytes


def test_a_body_larger_than_a_frame_is_split_into_body_frames() -> None:
    body = bytes(range(256)) * 100
    out = bytearray()
    FrameEncoder(out.extend, 4096).publish(1, ARGS, OutgoingMessage(body, {"delivery_mode": 1}))
    frames, pos = [], 0
    while pos < len(out):
        kind, size = out[pos], int.from_bytes(out[pos + 3 : pos + 7], "big")
        assert size + 8 <= 4096 and out[pos + 7 + size] == 0xCE
        frames.append((kind, bytes(out[pos + 7 : pos + 7 + size])))
        pos += size + 8
    assert [kind for kind, _ in frames[:2]] == [1, 2]
    assert {kind for kind, _ in frames[2:]} == {3} and len(frames) > 3
    assert b"".join(payload for _, payload in frames[2:]) == body


def test_deliveries_split_across_reads_are_joined() -> None:
    args = dumps("sLbss", ("ctag", 1, False, "", "q"))
    data = b"".join(
        _py_amqp_frames(
            1, spec.Basic.Deliver, args, amqp.Message(b"%d" % n, content_type="text/plain")
        )
        for n in range(3)
    )
    got: list[tuple[int, tuple[int, int], bytes]] = []
    decoder = FrameDecoder(lambda ch, sig, buf, msg: got.append((ch, sig, msg.body)))
    for i in range(0, len(data), 5):
        decoder.feed(data[i : i + 5])
    assert got == [(1, spec.Basic.Deliver, b"%d" % n) for n in range(3)]


def test_a_frame_without_its_end_byte_is_refused() -> None:
    out = bytearray()
    FrameEncoder(out.extend, 131072).method(0, spec.Connection.CloseOk)
    out[-1] = 0
    with pytest.raises(ValueError, match="frame end"):
        FrameDecoder(lambda *a: None).feed(bytes(out))
