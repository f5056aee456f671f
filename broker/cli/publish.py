"""``brokerpool publish``: publish one message, the body from the command line or stdin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from broker.cli.output import say
from broker.cli.support import add_timeout_argument, connect
from broker.errors import ConfigurationError

__all__ = ["add_publish_parser", "parse_headers", "run_publish"]


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
        say(
            f"published {len(body)} bytes to {target} with routing key "
            f"{args.routing_key!r} on {conn.as_uri()} ({how})"
        )
    return 0
