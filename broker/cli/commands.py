"""``brokerpool demo`` and ``brokerpool check``."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

from broker.cli.support import (
    add_timeout_argument,
    connect,
    dump_json,
    measure_round_trip,
    server_facts,
)
from broker.connection.connection import Connection
from broker.errors import BrokerError

__all__ = ["add_check_parser", "add_demo_parser", "run_check", "run_demo"]

DEMO_MESSAGES = (
    {"n": 1, "text": "hello"},
    {"n": 2, "text": "from"},
    {"n": 3, "text": "brokerpool"},
)


def add_demo_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool demo``."""
    p = sub.add_parser(
        "demo",
        parents=[parent],
        help="publish and consume a few messages, narrating each step",
        description=(
            "Open a connection, declare a queue, publish three messages, consume and "
            "acknowledge them, and close. Runs on the embedded memory:// broker unless "
            "--url names another one (a unique auto-delete queue is used there)."
        ),
    )
    p.add_argument("--url", default="memory://", help="broker URL (default: %(default)s)")
    add_timeout_argument(p, "seconds allowed for connecting and for each wait (default: 5)")
    p.set_defaults(func=run_demo)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_demo(args: argparse.Namespace) -> int:
    """Publish and consume :data:`DEMO_MESSAGES` on one queue, narrating each step."""
    from broker.entities.queue import Queue

    conn = connect([args.url], timeout=args.timeout)
    with conn:
        facts = server_facts(conn)
        _say(f"connected to {conn.as_uri()} ({facts['product']} {facts['version']})")
        queue = Queue(f"brokerpool-demo-{uuid.uuid4().hex[:8]}", auto_delete=True)
        queue = queue.bind(conn)  # bound to the connection's default channel
        queue.declare()
        _say(f"declared queue {queue.name!r} (auto-delete)")
        producer = conn.Producer(serializer="json")
        for body in DEMO_MESSAGES:
            producer.publish(body, routing_key=queue.name, retry=True)
            _say(f"published {body} -> {queue.name!r}")
        received = _consume_demo_messages(conn, queue, len(DEMO_MESSAGES), args.timeout)
        _say(f"consumed {received} of {len(DEMO_MESSAGES)} messages, each acknowledged")
    _say(f"closed the connection to {conn.as_uri()}")
    return 0 if received == len(DEMO_MESSAGES) else 1


def _consume_demo_messages(conn: Connection, queue: Any, expected: int, timeout: float) -> int:
    """Consume ``expected`` messages from ``queue``, acknowledging each."""
    received = 0

    def on_message(body: Any, message: Any) -> None:
        nonlocal received
        received += 1
        redelivered = message.delivery_info.get("redelivered", False)
        flags = f"content_type={message.content_type}, redelivered={redelivered}"
        message.ack()
        _say(f"received {body} ({flags}) -> acked")

    deadline = time.monotonic() + timeout
    with conn.Consumer([queue], callbacks=[on_message], prefetch_count=expected):
        while received < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                conn.drain_events(timeout=left)
            except TimeoutError:
                break
    return received


def add_check_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool check``."""
    p = sub.add_parser(
        "check",
        parents=[parent],
        help="connect (failing over between URLs) and print what the broker announced",
        description=(
            "Connect to the first broker that answers (several URLs are alternates of one "
            "connection, tried in order) and print the host reached, the server's product, "
            "version and capabilities, the negotiated heartbeat and frame size, and the "
            "round-trip latency. Exit 0 when a broker answered, 1 otherwise."
        ),
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="broker URL(s), e.g. amqp://h:5672//")
    add_timeout_argument(p, "total seconds for connecting, all alternates included (default: 5)")
    p.add_argument(
        "--heartbeat",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="heartbeat interval to request; the broker may lower it (default: %(default)g)",
    )
    p.add_argument(
        "--passes",
        type=int,
        default=1,
        metavar="N",
        help="times to go over the list of URLs before giving up (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Connect, gather :func:`server_facts` and the round-trip time, print them."""
    if args.passes < 1:
        args.passes = 1
    started = time.perf_counter()
    try:
        conn = connect(
            args.urls, timeout=args.timeout, heartbeat=args.heartbeat, passes=args.passes
        )
    except BrokerError as exc:
        if args.json:
            from broker.cli.main import error_line

            dump_json({"ok": False, "error": error_line(exc)})
        raise
    connect_time = time.perf_counter() - started
    with conn:
        facts = server_facts(conn)
        facts["connect_ms"] = round(connect_time * 1000, 3)
        facts["latency_ms"] = round(measure_round_trip(conn) * 1000, 3)
        facts["alternates"] = conn.describe_alternates().split(";")
    if args.json:
        dump_json({"ok": True, **facts})
    else:
        _print_facts(facts)
    return 0


def _print_facts(facts: dict[str, Any]) -> None:
    caps = facts["capabilities"]
    enabled = sorted(name for name, on in caps.items() if on)
    disabled = sorted(name for name, on in caps.items() if not on)
    heartbeat = facts["heartbeat"]
    lines = [
        f"reached       {facts['uri']} (host {facts['host']}, transport {facts['transport']})",
        f"server        {facts['product']} {facts['version']}"
        + (f" on {facts['platform']}" if facts["platform"] else ""),
    ]
    if facts["cluster_name"]:
        lines.append(f"cluster       {facts['cluster_name']}")
    lines += [
        f"capabilities  {', '.join(enabled) or '(none)'}",
        *([f"not supported {', '.join(disabled)}"] if disabled else []),
        f"heartbeat     {f'{heartbeat:g} s' if heartbeat else 'off'}",
        f"frame_max     {facts['frame_max']} bytes",
        f"connect       {facts['connect_ms']:.2f} ms",
        f"round trip    {facts['latency_ms']:.3f} ms (median of 5 passive queue.declare)",
    ]
    if len(facts["alternates"]) > 1:
        lines.append(f"alternates    {'; '.join(facts['alternates'])}")
    _say("\n".join(lines))
