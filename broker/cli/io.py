"""``brokerpool publish`` and ``brokerpool consume``."""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Sequence
from typing import Any

from broker.cli.support import add_timeout_argument, connect, dump_json
from broker.connection.connection import Connection
from broker.errors import ConfigurationError

__all__ = [
    "add_consume_parser",
    "add_publish_parser",
    "parse_headers",
    "run_consume",
    "run_publish",
]


def add_publish_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool publish``."""
    p = sub.add_parser(
        "publish",
        parents=[parent],
        help="publish one message (the body from the command line or stdin)",
        description="Publish one message. BODY '-' reads the body from stdin (as bytes).",
    )
    p.add_argument("url", metavar="URL", help="broker URL ('url1;url2' for alternates)")
    p.add_argument("body", metavar="BODY", help="the message body, or - to read stdin")
    p.add_argument("-e", "--exchange", default="", help="exchange name (default: the default one)")
    p.add_argument("-k", "--routing-key", default="", help="routing key (a queue name on '')")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an application header (repeatable)",
    )
    p.add_argument("--content-type", default="text/plain", help="default: %(default)s")
    p.add_argument("--content-encoding", default="utf-8", help="default: %(default)s")
    p.add_argument("--persistent", action="store_true", help="delivery_mode=2 (survives restarts)")
    p.add_argument(
        "--confirm",
        action="store_true",
        help="wait until the broker confirms the message (exit 1 if it is nacked or returned)",
    )
    p.add_argument(
        "--mandatory",
        action="store_true",
        help="ask the broker to return the message if no queue takes it",
    )
    add_timeout_argument(p, "seconds for connecting and for the confirm (default: 5)")
    p.set_defaults(func=run_publish)


def parse_headers(items: Sequence[str]) -> dict[str, str]:
    """Turn ``['k=v', ...]`` into a dict.

    Raises:
        ConfigurationError: an item has no ``=`` or an empty key.
    """
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--header must look like KEY=VALUE, got {item!r}")
        headers[key] = value
    return headers


def _read_body(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    return arg.encode("utf-8")


def run_publish(args: argparse.Namespace) -> int:
    """Publish one message and say where it went."""
    headers = parse_headers(args.header)
    body = _read_body(args.body)
    conn = connect([args.url], timeout=args.timeout)
    with conn:
        producer = conn.Producer(confirm_publish=args.confirm, confirm_timeout=args.timeout)
        producer.publish(
            body,
            exchange=args.exchange,
            routing_key=args.routing_key,
            headers=headers or None,
            content_type=args.content_type,
            content_encoding=args.content_encoding,
            delivery_mode=2 if args.persistent else 1,
            mandatory=args.mandatory,
        )
        how = "confirmed by the broker" if args.confirm else "sent"
        target = f"exchange {args.exchange!r}" if args.exchange else "the default exchange"
        sys.stdout.write(
            f"published {len(body)} bytes to {target} with routing key "
            f"{args.routing_key!r} on {conn.as_uri()} ({how})\n"
        )
    return 0


def add_consume_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool consume``."""
    p = sub.add_parser(
        "consume",
        parents=[parent],
        help="print the messages of a queue",
        description=(
            "Print message bodies from QUEUE until COUNT messages arrived or TIMEOUT "
            "seconds passed. Without --ack, messages go back to the queue when the "
            "command ends (a peek); with --ack they are removed."
        ),
    )
    p.add_argument("url", metavar="URL", help="broker URL ('url1;url2' for alternates)")
    p.add_argument("queue", metavar="QUEUE", help="an existing queue")
    p.add_argument("-n", "--count", type=int, default=None, help="stop after N messages")
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


def _print_message(message: Any, as_json: bool) -> None:
    if as_json:
        dump_json(_message_json(message))
        return
    body = message.body
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    # Binary bodies stay readable and one line per message; --json has them exact.
    sys.stdout.write(data.decode("utf-8", "backslashreplace") + "\n")
    sys.stdout.flush()


def run_consume(args: argparse.Namespace) -> int:
    """Consume from an existing queue; print each body."""
    if args.count is not None and args.count < 1:
        raise ConfigurationError(f"--count must be >= 1, got {args.count}")
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

    def on_message(message: Any) -> None:
        nonlocal got
        if args.count is not None and got >= args.count:
            return  # prefetched beyond the count: left unacked, so requeued at close
        got += 1
        _print_message(message, args.json)
        if args.ack:
            channel.basic_ack(message.delivery_tag)

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
