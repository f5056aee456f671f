"""A Redis consumer that takes messages and never acks them (the kill test's victim).

Run by ``test_redis_reliability.py`` as a separate process, so that the test
can SIGKILL it while it holds unacked messages::

    python redis_consumer_child.py URL KEY_PREFIX QUEUE COUNT VISIBILITY_TIMEOUT

It uses only brokerpool's public API: it declares ``QUEUE`` (durable, not
auto-deleted), consumes it with a prefetch of 200 and without acking, and once
it holds ``COUNT`` messages prints ``holding COUNT redelivered=N pid=PID`` on
stdout. Then it keeps draining events (its lease keeps being renewed by the
connection's heartbeat thread and by its own drain loop) until it is killed.
A line ``ack`` on stdin makes it ack every message it holds and print
``acked N refused M ERROR`` (ERROR: the class name of the first failure, or
``-``); ``exit`` makes it close the connection and exit.
"""

from __future__ import annotations

import contextlib
import os
import queue as queue_mod
import sys
import threading
import time
from typing import Any

from broker import Connection
from broker.errors import BrokerError, RecoverableConnectionError


def ack_all(held: list[Any]) -> str:
    """Ack every held message; report how many were accepted and refused."""
    acked, refused, first_error = 0, 0, "-"
    for message in held:
        try:
            message.channel.basic_ack(message.delivery_tag)
            acked += 1
        except BrokerError as exc:
            refused += 1
            if first_error == "-":
                first_error = type(exc).__name__
    return f"acked {acked} refused {refused} {first_error}"


def read_commands(commands: queue_mod.Queue[str]) -> None:
    for line in sys.stdin:
        commands.put(line.strip())


def main(argv: list[str]) -> int:
    url, key_prefix, queue, count, visibility_timeout = argv
    wanted = int(count)
    held: list[Any] = []
    conn = Connection(
        url,
        transport_options={
            "visibility_timeout": float(visibility_timeout),
            "key_prefix": key_prefix,
        },
    )
    channel = conn.channel()
    channel.queue_declare(queue=queue, durable=True, auto_delete=False)
    channel.basic_qos(0, 200, False)
    channel.basic_consume(queue=queue, callback=held.append)  # never acked
    deadline = time.monotonic() + 30
    while len(held) < wanted:
        if time.monotonic() > deadline:
            print(f"timeout holding {len(held)}", flush=True)
            return 1
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=1)
    redelivered = sum(bool(m.delivery_info["redelivered"]) for m in held)
    commands: queue_mod.Queue[str] = queue_mod.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    print(f"holding {len(held)} redelivered={redelivered} pid={os.getpid()}", flush=True)
    while True:  # a live consumer, busy with what it holds, until told or killed
        try:
            command = commands.get_nowait()
        except queue_mod.Empty:
            command = ""
        if command == "ack":
            print(ack_all(held), flush=True)
        elif command == "exit":
            conn.close()
            return 0
        # A lost lease closes the connection; the next drain reconnects.
        with contextlib.suppress(TimeoutError, RecoverableConnectionError):
            conn.drain_events(timeout=0.25)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
