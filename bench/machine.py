"""Facts about the machine and the software versions, for the report header."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from importlib import metadata

__all__ = ["describe", "rabbitmq_version"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _brokerpool_version() -> str:
    from broker import __version__

    return __version__


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rabbitmq_version(url: str) -> str:
    """The version the broker at ``url`` announces, or why it could not be asked."""
    try:
        import amqp
    except ImportError:
        return "unknown (py-amqp missing)"
    from broker.url.parse import parse_url

    parsed = parse_url(url)
    conn = amqp.Connection(
        host=f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5672}",
        userid=parsed.userid or "guest",
        password=parsed.password or "guest",
        virtual_host=parsed.virtual_host or "/",
        connect_timeout=3,
    )
    try:
        conn.connect()
        props = conn.server_properties
        product, version = props.get("product", "?"), props.get("version", "?")
        return f"{product} {version}"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def describe(url: str, ask_broker: bool = True) -> dict[str, str]:
    """Machine and version facts as ordered label -> value pairs.

    ``ask_broker=False`` (no selected case uses the broker) skips connecting
    to it for its version.
    """
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({_cpu_model()}), {platform.machine()}",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "brokerpool": _brokerpool_version(),
        "amqp (py-amqp)": _version("amqp"),
        "kombu": _version("kombu"),
        "pika": _version("pika"),
        "broker": rabbitmq_version(url) if ask_broker else "not used by the selected cases",
    }
