"""The AMQP transport's read side shared by threads (transports/amqp/demux.py), without a broker.

A scripted reader stands for the socket: ``read(timeout)`` routes the next
scripted frame through the demux, as the driver's ``read_frame`` does. Also
the frame writer threads share (``framing.py``) and the driver's own dispatch
of ``basic.ack``, each checked against py-amqp's encoding.
"""

from __future__ import annotations

import queue as queues
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from time import monotonic
from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.exceptions import UnexpectedFrame

from transports.amqp.demux import DRAIN, ConnectionLost, Demux
from transports.amqp.driver import DriverChannel
from transports.amqp.framing import encode
from transports.amqp.reading import BufferedReads

HANG = 10.0


class Script:
    """Frames to 'read': ``(channel_id, item)``; ``None`` makes the read fail."""

    def __init__(self, demux: Demux) -> None:
        self.demux = demux
        self.frames: queues.Queue[tuple[int, Any] | None] = queues.Queue()
        self.readers: set[int] = set()

    def read(self, timeout: float | None) -> None:
        self.readers.add(threading.get_ident())
        try:
            frame = self.frames.get(timeout=timeout)
        except queues.Empty:
            raise TimeoutError("timed out") from None
        if frame is None:
            raise OSError("Server unexpectedly closed connection")
        self.demux.route(*frame)


def make(consuming: Callable[[int], bool] = lambda channel: False) -> tuple[Demux, Script]:
    demux = Demux(consuming)
    for channel in (1, 2, 3):
        demux.open_slot(channel)
    return demux, Script(demux)


def later(seconds: float = HANG) -> float:
    return monotonic() + seconds


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_one_thread_reads_and_takes_its_own_events_in_order() -> None:
    demux, script = make()
    for n in range(3):
        script.frames.put((1, ("method", n, None)))
    got = [demux.next_event(1, later(), script.read) for _ in range(3)]
    assert got == [(1, ("method", n, None)) for n in range(3)]
    assert script.readers == {threading.get_ident()}


def test_each_waiting_thread_gets_its_own_channels_event() -> None:
    demux, script = make()
    first, got_first = in_thread(lambda: (demux.next_event(1, later(), script.read),
                                          threading.get_ident()))  # fmt: skip
    second, got_second = in_thread(lambda: (demux.next_event(2, later(), script.read),
                                            threading.get_ident()))  # fmt: skip
    script.frames.put((2, ("for two",)))
    script.frames.put((1, ("for one",)))
    first.join(HANG)
    second.join(HANG)
    assert got_first[0] == ((1, ("for one",)), first.ident)
    assert got_second[0] == ((2, ("for two",)), second.ident)


def test_a_drain_takes_the_channels_its_thread_used_and_consumers_nobody_drains() -> None:
    demux, script = make(consuming=lambda channel: channel == 3)
    me = threading.get_ident()
    demux.used_by(1, me)
    demux.used_by(2, me + 1)  # another thread's channel: not ours to take
    script.frames.put((2, ("not mine",)))
    script.frames.put((1, ("mine",)))
    script.frames.put((3, ("a delivery",)))
    assert demux.next_event(DRAIN, later(), script.read) == (1, ("mine",))
    assert demux.next_event(DRAIN, later(), script.read) == (3, ("a delivery",))
    with pytest.raises(TimeoutError):
        demux.next_event(DRAIN, later(0.2), script.read)
    assert demux.has_events(2)  # waits for the thread that uses channel 2
    assert demux.next_event(2, later(), script.read) == (2, ("not mine",))


def test_a_claimed_channel_is_not_drained_by_another_thread() -> None:
    demux, script = make(consuming=lambda channel: True)
    waiting = threading.Event()

    def wait_on_one() -> Any:
        demux.claim(1)
        waiting.set()
        try:
            return demux.next_event(1, later(), script.read)
        finally:
            demux.unclaim(1)

    waiter, got = in_thread(wait_on_one)
    assert waiting.wait(HANG)
    script.frames.put((1, ("reply",)))
    with pytest.raises(TimeoutError):
        demux.next_event(DRAIN, later(0.3), script.read)  # reads the reply, cannot take it
    waiter.join(HANG)
    assert got == [(1, ("reply",))]


def test_a_failed_read_wakes_every_waiting_thread() -> None:
    demux, script = make()
    waiters = [in_thread(lambda c=c: demux.next_event(c, later(), script.read)) for c in (1, 2, 3)]
    script.frames.put(None)
    for thread, _ in waiters:
        thread.join(HANG)
    errors = [out[0] for _, out in waiters]
    assert sum(isinstance(e, OSError) and not isinstance(e, ConnectionLost) for e in errors) == 1
    lost = [e for e in errors if isinstance(e, ConnectionLost)]
    assert len(lost) == 2 and all("unexpectedly closed" in str(e.original) for e in lost)
    with pytest.raises(ConnectionLost):
        demux.next_event(1, later(), script.read)  # and every later wait


def test_a_wait_ends_at_its_deadline() -> None:
    demux, script = make()
    with pytest.raises(TimeoutError):
        demux.next_event(1, later(0.1), script.read)


def test_poll_reads_what_arrived_and_takes_only_its_channel() -> None:
    demux, script = make()
    script.frames.put((2, ("other",)))
    script.frames.put((1, ("own",)))

    def read_ready() -> None:
        while not script.frames.empty():
            script.read(0)

    assert demux.poll(1, read_ready) == (1, ("own",))
    assert demux.poll(1, read_ready) is None
    assert demux.has_events(2)


_WITH_HEADERS = {"content_type": "application/json", "delivery_mode": 2, "priority": 3,
                 "application_headers": {"a": 1}, "message_id": "m", "timestamp": 1}  # fmt: skip
_PLAIN = {"content_type": "text/plain", "content_encoding": "utf-8", "delivery_mode": 2}


@pytest.mark.parametrize("properties", [_WITH_HEADERS, _PLAIN], ids=["headers", "plain"])
@pytest.mark.parametrize("body", [b"", b"x" * 100, b"y" * 10_000, "text é"])
def test_the_frame_writer_encodes_what_py_amqp_sends(body: Any, properties: dict[str, Any]) -> None:
    from amqp.method_framing import frame_writer

    sent: list[bytes] = []

    class Transport:
        def write(self, data: Any) -> None:
            sent.append(bytes(data))

    class Conn:
        frame_max = 4096
        bytes_sent = 0

    args = amqp.serialization.dumps("Bssbb", (0, "ex", "rk", False, False))
    frame_writer(Conn(), Transport())(1, 5, (60, 40), args, amqp.Message(body, **properties))
    # Twice: the second time the property list of a plain publish is the one encoded before.
    for _ in range(2):
        ours = encode(4096, 1, 5, (60, 40), args, amqp.Message(body, **properties))
        assert b"".join(sent) == ours


def test_a_property_list_encoded_before_is_not_taken_for_a_different_one() -> None:
    args = amqp.serialization.dumps("Bssbb", (0, "", "rk", False, False))
    first = encode(4096, 1, 1, (60, 40), args, amqp.Message(b"x", **_PLAIN))
    other = encode(4096, 1, 1, (60, 40), args, amqp.Message(b"x", **{**_PLAIN, "priority": 1}))
    assert first != other
    assert encode(4096, 1, 1, (60, 40), args, amqp.Message(b"x", **_PLAIN)) == first


@pytest.mark.parametrize(("tag", "multiple"), [(1, False), (7, True), (2**63 + 5, False)])
def test_a_basic_ack_reaches_the_listeners_as_py_amqp_decodes_it(tag: int, multiple: bool) -> None:
    heard: list[tuple[int, bool]] = []
    channel = DriverChannel.__new__(DriverChannel)  # only what dispatching an ack reads
    channel.is_closing, channel.channel_id = False, 1
    channel.events = {"basic_ack": {lambda *args: heard.append(args)}}
    payload = struct.pack(">HH", *spec.Basic.Ack) + amqp.serialization.dumps("Lb", (tag, multiple))
    assert amqp.serialization.loads("Lb", payload, 4)[0] == [tag, multiple]

    channel.dispatch_method(spec.Basic.Ack, payload, None)
    assert heard == [(tag, multiple)]

    channel.is_closing = True  # py-amqp ignores it, as every method but close and close-ok
    channel.dispatch_method(spec.Basic.Ack, payload, None)
    assert heard == [(tag, multiple)]


def _frame(kind: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + end


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    yield ours, peer
    ours.close()
    peer.close()


def _reads(sock: socket.socket, within: float, unread: bytes = b"") -> BufferedReads:
    """Reads of a stand-in py-amqp transport on ``sock`` holding ``unread`` of a frame begun."""
    transport = SimpleNamespace(sock=sock, _quick_recv=sock.recv, _read_buffer=unread)
    reads = BufferedReads(transport)
    assert transport._read_buffer == b""  # taken over
    reads.deadline = monotonic() + within
    return reads


def test_buffered_reads_cut_frames_and_keep_a_partial_one_across_a_timeout(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = socket_pair
    second = _frame(3, 7, b"body")
    peer.sendall(_frame(1, 5, b"abc") + second[:5])
    reads = _reads(ours, 1)
    assert reads.read_frame() == (1, 5, b"abc")
    reads.deadline = monotonic() + 0.05
    with pytest.raises(TimeoutError):  # half a frame is not a frame
        reads.read_frame()
    peer.sendall(second[5:])
    reads.deadline = monotonic() + 1
    assert reads.read_frame() == (3, 7, b"body")
    assert reads.fills == 2 and reads.buffered == 0


def test_buffered_reads_finish_a_frame_py_amqp_began_reading(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = socket_pair
    frame = _frame(1, 2, b"begun")
    peer.sendall(frame[4:])
    assert _reads(ours, 1, unread=frame[:4]).read_frame() == (1, 2, b"begun")


def test_buffered_reads_assemble_a_frame_larger_than_one_receive(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = socket_pair
    payload = bytes(range(256)) * 300  # 76,800 bytes: more than one recv of CHUNK
    sender = threading.Thread(target=peer.sendall, args=(_frame(3, 1, payload) * 2,))
    sender.start()
    reads = _reads(ours, 5)
    assert reads.read_frame() == (3, 1, payload)
    assert reads.read_frame() == (3, 1, payload)
    sender.join()
    assert reads.fills >= 3


def test_buffered_reads_refuse_a_frame_without_its_end_octet_and_a_closed_stream(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = socket_pair
    peer.sendall(_frame(8, 0, b"", end=b"\x00"))
    reads = _reads(ours, 1)
    with pytest.raises(UnexpectedFrame, match="0x00"):
        reads.read_frame()
    other, closing = socket.socketpair()
    closing.sendall(_frame(1, 1, b"x")[:4])
    closing.close()
    with pytest.raises(OSError, match="closed"):
        _reads(other, 1).read_frame()
    other.close()
