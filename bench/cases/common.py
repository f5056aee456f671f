"""Helpers shared by the benchmark cases: imports that may be missing, names, raw set-up."""

from __future__ import annotations

import contextlib
import importlib
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from bench.harness import Skip

__all__ = [
    "BODY_100",
    "PRODUCER_PROPERTIES",
    "amqp_connection",
    "amqp_params",
    "fill",
    "need",
    "raw_queue",
    "unique_name",
]

#: The 100-byte body used by the publish and consume cases.
BODY_100 = b"x" * 100
#: The properties brokerpool's and kombu's Producer send with a bytes body to a
#: durable exchange; raw py-amqp sends the same, so ratios measure overhead only.
PRODUCER_PROPERTIES = {
    "content_type": "application/data",
    "content_encoding": "binary",
    "delivery_mode": 2,
}


def need(module: str) -> ModuleType:
    """Import ``module`` or :class:`Skip` with the reason."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{module} is not installed ({exc})") from exc


def unique_name(case: str) -> str:
    """A queue name nobody else uses (other runs and tests share the broker)."""
    return f"bp-bench-{case}-{uuid.uuid4().hex[:8]}"


def amqp_params(url: str) -> dict[str, Any]:
    """py-amqp ``Connection`` keywords for ``url``."""
    from broker.url.parse import parse_url

    p = parse_url(url)
    return {
        "host": f"{p.hostname or '127.0.0.1'}:{p.port or 5672}",
        "userid": p.userid or "guest",
        "password": p.password or "guest",
        "virtual_host": p.virtual_host or "/",
    }


def amqp_connection(url: str, **kwargs: Any) -> Any:
    """A connected raw py-amqp connection."""
    amqp = need("amqp")
    conn = amqp.Connection(**amqp_params(url), **kwargs)
    conn.connect()
    return conn


@contextlib.contextmanager
def raw_queue(url: str, case: str) -> Iterator[tuple[str, Any]]:
    """Declare a unique queue over raw py-amqp; yield ``(name, channel)``; delete it after."""
    conn = amqp_connection(url)
    try:
        ch = conn.channel()
        name = unique_name(case)
        ch.queue_declare(queue=name, durable=False, auto_delete=False)
        try:
            yield name, ch
        finally:
            with contextlib.suppress(Exception):
                ch.queue_delete(queue=name)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def fill(ch: Any, queue: str, count: int, body: bytes = BODY_100) -> None:
    """Put ``count`` messages on ``queue`` (raw py-amqp, then one round trip so they landed)."""
    amqp = need("amqp")
    for _ in range(count):
        ch.basic_publish(amqp.Message(body), exchange="", routing_key=queue)
    # A synchronous method after the publishes: the broker has routed them all.
    ok = ch.queue_declare(queue=queue, passive=True)
    if ok.message_count < count:
        # Queue insertion may lag the channel; wait briefly for the count.
        deadline = time.monotonic() + 10
        while ok.message_count < count and time.monotonic() < deadline:
            time.sleep(0.01)
            ok = ch.queue_declare(queue=queue, passive=True)
