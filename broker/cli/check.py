"""``brokerpool check``: connect (failing over between URLs) and print what the broker announced."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from broker.cli.arguments import heartbeat_seconds, integer
from broker.cli.output import dump_json, error_line, say
from broker.cli.support import add_timeout_argument, connect, server_facts
from broker.connection.connection import Connection
from broker.errors import BrokerError, ChannelError
from broker.instrumentation import hooks as instrumentation

__all__ = ["add_check_parser", "measure_round_trip", "run_check"]


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
            "round-trip latency. Exit 0 when a broker answered, 1 otherwise. The latency "
            "probe declares a temporary queue; for a user who may not, it is reported as "
            "unavailable and the broker still counts as reachable."
        ),
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="broker URL(s), e.g. amqp://h:5672//")
    add_timeout_argument(p, "total seconds for connecting, all alternates included (default: 5)")
    p.add_argument(
        "--heartbeat",
        type=heartbeat_seconds,
        default=60.0,
        metavar="SECONDS",
        help="heartbeat interval to request; the broker may lower it (default: %(default)g)",
    )
    p.add_argument(
        "--passes",
        type=integer(1),
        default=1,
        metavar="N",
        help="times to go over the list of URLs before giving up (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Connect, gather the server facts and the round-trip time, print them.

    When instrumented, the whole check is one span, and its trace id is printed.
    """
    hooks = instrumentation.active
    if hooks is None:
        return _check(args, None)
    with hooks.span("check") as trace_id:
        return _check(args, trace_id)


def _check(args: argparse.Namespace, trace_id: str | None) -> int:
    traced = {"trace_id": trace_id} if trace_id is not None else {}
    started = time.perf_counter()
    try:
        conn = connect(
            args.urls, timeout=args.timeout, heartbeat=args.heartbeat, passes=args.passes
        )
    except BrokerError as exc:
        if args.json:
            dump_json({"ok": False, "error": error_line(exc), **traced})
        elif trace_id is not None:
            say(f"trace         {trace_id}")
        raise
    connect_time = time.perf_counter() - started
    with conn:
        facts = server_facts(conn)
        facts["connect_ms"] = round(connect_time * 1000, 3)
        try:
            facts["latency_ms"] = round(measure_round_trip(conn) * 1000, 3)
            facts["latency_unavailable"] = None
        except ChannelError as exc:
            # The broker answered; only the probe was refused (typically a user
            # whose configure permission excludes the probe's queue name).
            facts["latency_ms"] = None
            facts["latency_unavailable"] = error_line(exc)
        facts["alternates"] = conn.describe_alternates().split(";")
        facts.update(traced)
    if args.json:
        dump_json({"ok": True, **facts})
    else:
        _print_facts(facts)
    return 0


def measure_round_trip(conn: Connection, samples: int = 5) -> float:
    """Median round-trip time in seconds of a passive ``queue_declare``.

    A server-named exclusive queue is declared first, so the probe never
    touches anybody else's queue and vanishes with the channel.

    Raises:
        ChannelError: the broker refused the probe (``AccessRefused`` for a
            user who may not declare that queue); the connection stays usable.
    """
    channel = conn.channel()
    try:
        ok = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        assert ok is not None  # nowait=False always returns the reply
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            channel.queue_declare(queue=ok.queue, passive=True)
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)
    finally:
        channel.close()


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
        _round_trip_line(facts),
    ]
    if len(facts["alternates"]) > 1:
        lines.append(f"alternates    {'; '.join(facts['alternates'])}")
    if facts.get("trace_id"):
        lines.append(f"trace         {facts['trace_id']}")
    say("\n".join(lines))


def _round_trip_line(facts: dict[str, Any]) -> str:
    if facts["latency_ms"] is None:
        return f"round trip    unavailable: {facts['latency_unavailable']}"
    return f"round trip    {facts['latency_ms']:.3f} ms (median of 5 passive queue.declare)"
