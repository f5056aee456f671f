"""WriteBuffer: coalescing a py-amqp transport's frames into fewer socket writes.

Each test gives the buffer a stand-in for a py-amqp transport whose raw write
is one end of a real socket pair, and reads what arrives at the other end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.wait import wait_until
from transports.amqp.writes import IdleFlusher, WriteBuffer


class SocketTransport:
    """What WriteBuffer needs of a py-amqp transport: ``_write`` and ``connected``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected = True
        self._write = sock.sendall  # as py-amqp's TCP transport sets it
        self.sends = 0

    def write(self, data: Any) -> None:
        """py-amqp's transport.write: the raw write it looks up on every call."""
        self._write(data)


class MethodTransport:
    """A transport whose raw write is a method of its class (py-amqp's TLS transport)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected = True

    def _write(self, data: Any) -> None:
        self.sock.sendall(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    right.settimeout(2)
    yield left, right
    left.close()
    right.close()


def received(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2)
    return False


def test_frames_are_held_until_the_limit_then_sent_in_one_write(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=100, max_delay=60)
    for n in range(4):
        transport.write(bytes([n]) * 30)
    assert buffer.pending == 0 and buffer.sends == 1  # 120 bytes >= 100: one send
    assert received(right, 120) == b"".join(bytes([n]) * 30 for n in range(4))
    transport.write(b"tail")
    assert buffer.pending == 4 and nothing_waiting(right)


def test_a_view_of_a_reused_buffer_is_copied(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    scratch = bytearray(b"first")
    transport.write(memoryview(scratch))
    scratch[:] = b"SECND"  # py-amqp packs the next frame into the same bytes
    transport.write(memoryview(scratch))
    buffer.flush()
    assert received(right, 10) == b"firstSECND"


def test_close_sends_the_rest_and_restores_the_raw_write(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    raw = transport._write
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    assert transport._write == buffer.write
    transport.write(b"held")
    buffer.close()
    assert received(right, 4) == b"held"
    assert transport._write == raw
    transport.write(b"direct")
    assert received(right, 6) == b"direct" and buffer.sends == 1


def test_close_removes_the_override_of_a_class_level_raw_write(pair: Any) -> None:
    left, right = pair
    transport = MethodTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    assert "_write" in vars(transport)
    buffer.write(b"tls")
    buffer.close()
    assert "_write" not in vars(transport)  # the class's method is back
    assert received(right, 3) == b"tls"


def test_another_threads_write_sends_everything_at_once_in_order(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    transport.write(b"owner-1;")
    heartbeat = threading.Thread(target=transport.write, args=(b"HEARTBEAT;",))
    heartbeat.start()
    heartbeat.join()
    assert buffer.pending == 0
    assert received(right, 18) == b"owner-1;HEARTBEAT;"


def test_an_old_pending_byte_is_sent_with_the_next_write(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=0.05)
    transport.write(b"a")
    assert buffer.pending == 1
    time.sleep(0.06)
    transport.write(b"b")
    assert buffer.pending == 0 and received(right, 2) == b"ab"


def test_a_failed_send_marks_the_transport_disconnected(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    raw = transport._write
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    transport.write(b"lost")
    right.close()
    left.shutdown(socket.SHUT_WR)  # sendall fails with EPIPE from now on
    with pytest.raises(OSError):
        buffer.close()
    assert not transport.connected
    assert transport._write == raw and buffer.pending == 0


# -- the idle flusher: held frames leave when nobody writes or reads ----------------------


def test_flush_idle_sends_only_what_is_max_delay_old(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=60)
    transport.write(b"young")
    assert buffer.flush_idle() is False and buffer.pending == 5
    due = buffer.due_in()
    assert due is not None and 0 < due <= 60
    buffer.max_delay = 0
    assert buffer.flush_idle() is True
    assert received(right, 5) == b"young" and buffer.due_in() is None


def test_the_idle_flusher_sends_what_waited_max_delay_without_another_write(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=0.05)
    flusher = IdleFlusher("test")
    try:
        flusher.watch(buffer)
        transport.write(b"held;")
        transport.write(b"also held")
        # recv blocks (2 s at most, a hang guard) until the flusher sends.
        assert received(right, 14) == b"held;also held"
        # The flusher counts a send once it returned: the bytes can arrive first.
        wait_until(
            lambda: buffer.pending == 0 and flusher.flushes >= 1,
            2,
            message="the flusher did not account for its send",
        )
    finally:
        flusher.stop()


def test_the_idle_flusher_sends_under_the_guard(pair: Any) -> None:
    # Over TLS the guard is the transport's I/O lock: no send while another thread reads.
    left, right = pair
    transport = SocketTransport(left)
    io_lock = threading.RLock()
    buffer = WriteBuffer(transport, limit=1000, max_delay=0.01, guard=io_lock)
    flusher = IdleFlusher("test")
    try:
        with io_lock:
            flusher.watch(buffer)
            transport.write(b"guarded")
            time.sleep(0.1)  # the flusher is due, but waits for the lock
            assert nothing_waiting(right) and buffer.pending == 7
        assert received(right, 7) == b"guarded"
    finally:
        flusher.stop()


def test_the_idle_flusher_waits_between_batches_and_ends_when_stopped(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    flusher = IdleFlusher("test")
    assert flusher.is_alive and "idle" in repr(flusher)
    first = WriteBuffer(transport, limit=1000, max_delay=0.01)
    flusher.watch(first)
    assert "watching" in repr(flusher)
    transport.write(b"1")
    assert received(right, 1) == b"1"
    first.close()
    flusher.watch(None)
    second = WriteBuffer(transport, limit=1000, max_delay=0.01)
    flusher.watch(second)  # the next batch reuses the thread
    transport.write(b"2")
    assert received(right, 1) == b"2"
    second.close()
    flusher.stop()
    wait_until(lambda: not flusher.is_alive, 5, message="the flusher did not end")
    assert "stopped" in repr(flusher)


def test_a_failed_idle_flush_marks_the_transport_disconnected(pair: Any) -> None:
    left, right = pair
    transport = SocketTransport(left)
    buffer = WriteBuffer(transport, limit=1000, max_delay=0.01)
    right.close()
    left.shutdown(socket.SHUT_WR)  # sendall fails with EPIPE from now on
    flusher = IdleFlusher("test")
    try:
        flusher.watch(buffer)
        transport.write(b"lost")
        wait_until(lambda: not transport.connected, 5, message="the failed send went unnoticed")
        wait_until(lambda: "idle" in repr(flusher), 5, message="the flusher kept watching")
    finally:
        flusher.stop()
