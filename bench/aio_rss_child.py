"""Child process of the asyncio RSS case: ``python -m bench.aio_rss_child LIBRARY URL N``.

On one event loop, opens one connection first (so imports and one-time
allocations are paid), records the resident set size, opens N more idle
connections, ten at a time, records RSS again and prints
``{"kib_per_connection": ..., "opened": ...}`` as JSON. ``opened`` is how many
of the N the broker accepted (the figure is per opened connection). One
process per measurement keeps the libraries from sharing allocator state.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench.rss_child import rss_bytes

#: Connections opened at once: enough to overlap handshakes, few enough not to flood the broker.
BATCH = 10
#: ``(open_one, close)``: open one idle connection; close one.
Opener = tuple[Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]]


def _brokerpool(url: str) -> Opener:
    from broker.aio import Connection

    async def open_one() -> Any:
        return await Connection(url).connect()

    async def close(conn: Any) -> None:
        await conn.close()

    return open_one, close


def _aio_pika(url: str) -> Opener:
    import aio_pika

    async def open_one() -> Any:
        return await aio_pika.connect(url)

    async def close(conn: Any) -> None:
        await conn.close()

    return open_one, close


OPENERS = {"brokerpool": _brokerpool, "aio-pika": _aio_pika}


async def measure(library: str, url: str, n: int) -> dict[str, float]:
    """RSS per idle connection of ``library`` over ``n`` connections to ``url``."""
    open_one, close = OPENERS[library](url)
    held = [await open_one()]  # warm-up: imports, first socket, first tables
    await asyncio.sleep(0.2)  # let the first connection's timers and buffers settle
    gc.collect()
    before = rss_bytes()
    for start in range(0, n, BATCH):
        opened = await asyncio.gather(
            *(open_one() for _ in range(min(BATCH, n - start))), return_exceptions=True
        )
        good = [conn for conn in opened if not isinstance(conn, BaseException)]
        held += good
        if len(good) < len(opened):  # the broker allows no more: measure what it took
            break
    await asyncio.sleep(0.2)
    gc.collect()
    after = rss_bytes()
    count = len(held) - 1
    await asyncio.gather(*(close(conn) for conn in held), return_exceptions=True)
    return {"kib_per_connection": (after - before) / max(count, 1) / 1024, "opened": count}


def main(argv: list[str]) -> int:
    library, url, n = argv[0], argv[1], int(argv[2])
    print(json.dumps(asyncio.run(measure(library, url, n))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
