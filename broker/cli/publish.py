"""``brokerpool publish``: publish one message, the body from the command line or stdin.

The message is confirmed and mandatory by default, so a missing exchange or a
message no queue takes is an error (exit 1), never a silent drop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from broker.cli.output import say
from broker.cli.support import add_timeout_argument, connect
from broker.connection.connection import Connection
from broker.errors import ConfigurationError, NotFound

__all__ = ["add_publish_parser", "declare_queue", "parse_headers", "run_publish"]


def add_publish_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``brokerpool publish``."""
    p = sub.add_parser(
        "publish",
        parents=[parent],
        help="publish one message (the body from the command line or stdin)",
        description=(
            "Publish one message. BODY '-' reads the body from stdin (as bytes). By default "
            "the command waits for the broker's confirm and fails (exit 1) when the exchange "
            "does not exist or no queue takes the message; --queue declares the target queue."
        ),
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
        "-q",
        "--queue",
        metavar="QUEUE",
        help=(
            "declare QUEUE (durable) unless it exists, bind it to --exchange with the routing "
            "key when an exchange is named, and route the message to it (the routing key "
            "defaults to QUEUE)"
        ),
    )
    p.add_argument(
        "--confirm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "wait until the broker confirms the message; exit 1 if it is refused, nacked or "
            "returned (default: on; --no-confirm only sends it)"
        ),
    )
    p.add_argument(
        "--mandatory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "ask the broker to return the message if no queue takes it, which --confirm "
            "reports as an error (default: on)"
        ),
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
    """Publish one message and say where it went (exit 1 when the broker refused it)."""
    headers = parse_headers(args.header)
    body = _read_body(args.body)
    routing_key = args.routing_key
    if args.queue is not None and not routing_key:
        routing_key = args.queue
    conn = connect([args.url], timeout=args.timeout)
    with conn:
        if args.queue is not None:
            declare_queue(conn, args.queue, args.exchange, routing_key)
        producer = conn.Producer(confirm_publish=args.confirm, confirm_timeout=args.timeout)
        producer.publish(
            body,
            exchange=args.exchange,
            routing_key=routing_key,
            headers=headers or None,
            content_type=args.content_type,
            content_encoding=args.content_encoding,
            delivery_mode=2 if args.persistent else 1,
            mandatory=args.mandatory,
        )
        target = f"exchange {args.exchange!r}" if args.exchange else "the default exchange"
        say(
            f"published {len(body)} bytes to {target} with routing key "
            f"{routing_key!r} on {conn.as_uri()} ({_outcome(args)})"
        )
    return 0


def _outcome(args: argparse.Namespace) -> str:
    if args.confirm:
        return "confirmed by the broker"
    return "sent without waiting for a confirm: not known whether the broker took it"


def declare_queue(conn: Connection, queue: str, exchange: str, routing_key: str) -> None:
    """Declare ``queue`` (durable) unless it exists; bind it to ``exchange`` if one is named.

    An existing queue is used as it is, whatever its arguments, so the
    command never fails on a queue declared differently by its owner.

    Raises:
        NotFound: ``exchange`` does not exist.
        AccessRefused: the user may not declare or bind the queue.
    """
    channel = conn.channel()
    try:
        channel.queue_declare(queue=queue, passive=True)
    except NotFound:
        # The failed passive declare closed that channel.
        channel = conn.channel()
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
    try:
        if exchange:
            channel.queue_bind(queue=queue, exchange=exchange, routing_key=routing_key)
    finally:
        channel.close()
