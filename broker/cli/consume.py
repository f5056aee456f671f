"""``brokerpool consume``: print the messages of an existing queue, as text or JSON lines."""

from __future__ import annotations

import argparse
import base64
import sys
import time
from typing import Any

from broker.cli.arguments import integer
from broker.cli.output import dump_json, printable, say
from broker.cli.support import add_timeout_argument, connect
from broker.connection.connection import Connection
from broker.instrumentation import hooks as instrumentation

__all__ = ["add_consume_parser", "run_consume"]


def add_consume_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool consume``."""
    p = sub.add_parser(
        "consume",
        parents=[parent],
        help="print the messages of a queue",
        description=(
            "Print message bodies from QUEUE until COUNT messages arrived or TIMEOUT "
            "seconds passed. Without --ack, messages go back to the queue when the "
            "command ends (a peek); with --ack they are removed. Each body is printed as "
            "one line of text with control characters escaped (\\n, \\x1b, \\x00...); "
            "--json prints them exactly."
        ),
    )
    p.add_argument("url", metavar="URL", help="broker URL ('url1;url2' for alternates)")
    p.add_argument("queue", metavar="QUEUE", help="an existing queue")
    p.add_argument(
        "-n", "--count", type=integer(1), default=None, metavar="N", help="stop after N messages"
    )
    p.add_argument("--ack", action="store_true", help="acknowledge (remove) each message")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    add_timeout_argument(p, "stop after this many seconds in total (default: 5)")
    p.set_defaults(func=run_consume)


def _message_json(message: Any) -> dict[str, Any]:
    body = message.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    out: dict[str, Any] = {}
    try:
        out["body"] = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(body).decode("ascii")
        out["body_encoding"] = "base64"
    info = message.delivery_info
    out["properties"] = dict(message.properties)
    out["exchange"] = info.get("exchange", "")
    out["routing_key"] = info.get("routing_key", "")
    out["redelivered"] = bool(info.get("redelivered", False))
    return out


def _print_message(message: Any, as_json: bool, trace_id: str | None = None) -> None:
    if as_json:
        out = _message_json(message)
        if trace_id is not None:
            out["trace_id"] = trace_id
        dump_json(out)
        return
    body = message.body
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    # Invalid UTF-8 shows as \xNN; --json has the exact bytes.
    say(printable(data.decode("utf-8", "backslashreplace")))
    if trace_id is not None:
        # On stderr: stdout stays one line per body.
        sys.stderr.write(f"brokerpool: trace {trace_id}\n")


def run_consume(args: argparse.Namespace) -> int:
    """Consume from an existing queue; print each body."""
    deadline = time.monotonic() + args.timeout
    conn = connect([args.url], timeout=args.timeout)
    with conn:
        got = _consume(conn, args, deadline)
    if args.count is not None and got < args.count:
        sys.stderr.write(
            f"brokerpool: error: received {got} of {args.count} messages from "
            f"{args.queue!r} within {args.timeout:g} s\n"
        )
        return 1
    return 0


def _consume(conn: Connection, args: argparse.Namespace, deadline: float) -> int:
    channel = conn.channel()
    # Passive: a typo in the queue name is an error, not a new empty queue.
    channel.queue_declare(queue=args.queue, passive=True)
    if args.count is not None:
        channel.basic_qos(0, min(args.count, 65535), False)
    got = 0

    def handle(message: Any) -> None:
        hooks = instrumentation.active
        if hooks is None:
            _print_message(message, args.json)
        else:  # the message's own trace, continued by the process span around this
            _print_message(message, args.json, hooks.current_trace_id())
        if args.ack:
            channel.basic_ack(message.delivery_tag)
            if hooks is not None:
                hooks.settled(conn, message, "ack")

    def on_message(message: Any) -> None:
        nonlocal got
        if args.count is not None and got >= args.count:
            return  # prefetched beyond the count: left unacked, so requeued at close
        got += 1
        hooks = instrumentation.active
        if hooks is None:
            handle(message)
        else:
            hooks.process(conn, message, args.queue, lambda: handle(message))

    channel.basic_consume(queue=args.queue, callback=on_message)
    while args.count is None or got < args.count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            conn.drain_events(timeout=left)
        except TimeoutError:
            break
    channel.close()
    return got
