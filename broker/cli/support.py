"""What the networked ``brokerpool`` subcommands share: the ``--timeout`` option,
a bounded connect over alternates, and the facts a broker announced.

The retry schedule is the library's default (:mod:`broker.retry.policy`);
the command line only passes on the budget and the number of passes the
user asked for.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from broker.cli.arguments import positive_float
from broker.connection.connection import Connection
from broker.errors import ConfigurationError

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_timeout_argument",
    "connect",
    "server_facts",
    "text_of",
]

#: Default budget, in seconds, for connecting (all attempts and alternates).
DEFAULT_TIMEOUT = 5.0


def add_timeout_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--timeout SECONDS`` option every networked command has."""
    parser.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help=help
    )


def connect(
    urls: Sequence[str],
    *,
    timeout: float,
    heartbeat: float = 0,
    passes: int = 1,
) -> Connection:
    """Open one Connection over ``urls`` (alternates), bounded by ``timeout`` seconds.

    Args:
        urls: one or more broker URLs; each may itself be ``'url1;url2'``.
        timeout: total seconds for every attempt (each attempt is cut to what is left).
        heartbeat: requested heartbeat interval.
        passes: how many times to go over the list of alternates (the default
            retry policy's backoff separates the passes; the budget caps them).

    Raises:
        ConfigurationError: a URL or option is malformed.
        OperationalError: no broker answered within the budget.
        AuthenticationError: the broker refused the credentials.
    """
    if not urls:
        raise ConfigurationError("at least one broker URL is required")
    conn = Connection(
        list(urls), connect_timeout=min(timeout, DEFAULT_TIMEOUT), heartbeat=heartbeat
    )
    try:
        conn.ensure_connection(max_retries=passes * conn.alternate_count - 1, timeout=timeout)
    except BaseException:
        conn.collect()
        raise
    return conn


def text_of(value: Any) -> Any:
    """Server property values may be bytes (py-amqp) or str (memory); show text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): text_of(v) for k, v in value.items()}
    return value


def server_facts(conn: Connection) -> dict[str, Any]:
    """What the broker announced and what was negotiated, ready for display or JSON."""
    props = text_of(dict(conn.server_properties))
    transport = conn.transport_connection
    return {
        "uri": conn.as_uri(),
        "host": conn.host,
        "transport": conn.transport.name,
        "product": props.get("product"),
        "version": props.get("version"),
        "platform": props.get("platform"),
        "cluster_name": props.get("cluster_name"),
        "capabilities": dict(props.get("capabilities") or {}),
        "heartbeat": transport.heartbeat if transport is not None else None,
        "frame_max": transport.frame_max if transport is not None else None,
    }
