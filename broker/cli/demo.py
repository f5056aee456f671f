"""``brokerpool demo``: publish and consume a few messages, narrating each step."""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from broker.cli.output import say
from broker.cli.support import add_timeout_argument, connect, server_facts
from broker.connection.connection import Connection
from broker.entities.queue import Queue

__all__ = ["DEMO_MESSAGES", "add_demo_parser", "run_demo"]

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


def run_demo(args: argparse.Namespace) -> int:
    """Publish and consume :data:`DEMO_MESSAGES` on one queue, narrating each step."""
    conn = connect([args.url], timeout=args.timeout)
    with conn:
        facts = server_facts(conn)
        say(f"connected to {conn.as_uri()} ({facts['product']} {facts['version']})")
        queue = Queue(f"brokerpool-demo-{uuid.uuid4().hex[:8]}", auto_delete=True)
        queue = queue.bind(conn)  # bound to the connection's default channel
        queue.declare()
        say(f"declared queue {queue.name!r} (auto-delete)")
        producer = conn.Producer(serializer="json")
        for body in DEMO_MESSAGES:
            producer.publish(body, routing_key=queue.name, retry=True)
            say(f"published {body} -> {queue.name!r}")
        received = _consume_demo_messages(conn, queue, len(DEMO_MESSAGES), args.timeout)
        say(f"consumed {received} of {len(DEMO_MESSAGES)} messages, each acknowledged")
    say(f"closed the connection to {conn.as_uri()}")
    return 0 if received == len(DEMO_MESSAGES) else 1


def _consume_demo_messages(conn: Connection, queue: Queue, expected: int, timeout: float) -> int:
    """Consume ``expected`` messages from ``queue``, acknowledging each."""
    received = 0

    def on_message(body: Any, message: Any) -> None:
        nonlocal received
        received += 1
        redelivered = message.delivery_info.get("redelivered", False)
        flags = f"content_type={message.content_type}, redelivered={redelivered}"
        message.ack()
        say(f"received {body} ({flags}) -> acked")

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
