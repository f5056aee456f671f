"""Child process of the RSS case: ``python -m bench.rss_child LIBRARY URL N``.

Opens one connection first (so imports and one-time allocations are paid),
records the resident set size, opens N more through the library's pool (or
a plain list where the library has no pool), records RSS again and prints
``{"kib_per_connection": ...}`` as JSON. One process per measurement keeps
libraries from sharing allocator state.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _brokerpool(url: str, n: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    from broker import Connection

    pool = Connection(url).Pool(limit=n + 1)

    def open_one() -> Any:
        lease = pool.acquire()
        lease.connect()
        return lease

    return open_one, pool.force_close_all


def _kombu(url: str, n: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    from bench.cases.common import need

    kombu = need("kombu")
    pool = kombu.Connection(url).Pool(limit=n + 1)

    def open_one() -> Any:
        conn = pool.acquire()
        conn.connect()
        return conn

    return open_one, pool.force_close_all


def _raw(url: str, n: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    import amqp

    from bench.cases.common import amqp_params

    opened: list[Any] = []

    def open_one() -> Any:
        conn = amqp.Connection(**amqp_params(url))
        conn.connect()
        opened.append(conn)
        return conn

    def close_all() -> None:
        for conn in opened:
            conn.close()

    return open_one, close_all


def _pika(url: str, n: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    from bench.cases.publish import pika_connection

    opened: list[Any] = []

    def open_one() -> Any:
        conn = pika_connection(url)
        opened.append(conn)
        return conn

    def close_all() -> None:
        for conn in opened:
            conn.close()

    return open_one, close_all


OPENERS = {"brokerpool": _brokerpool, "kombu": _kombu, "py-amqp": _raw, "pika": _pika}


def main(argv: list[str]) -> int:
    library, url, n = argv[0], argv[1], int(argv[2])
    open_one, close_all = OPENERS[library](url, n)
    held = [open_one()]  # warm-up: imports, first socket, first channel tables
    gc.collect()
    before = rss_bytes()
    held += [open_one() for _ in range(n)]
    gc.collect()
    after = rss_bytes()
    close_all()
    print(json.dumps({"kib_per_connection": (after - before) / n / 1024}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
