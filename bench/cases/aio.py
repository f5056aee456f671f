"""The asyncio cases: ``broker.aio`` side by side with aio-pika 10 on the same broker.

Each library runs on an event loop of its own, created in the runner's
set-up; ``measure()`` runs one timed coroutine to completion on it. The
aio-pika runners use aio-pika the way its documentation shows: a channel
without publisher confirms and ``channel.default_exchange.publish`` for
unconfirmed publishing; a channel with publisher confirms and
``asyncio.gather`` over the publishes for pipelined confirms; a queue
iterator with ``set_qos(100)`` for consuming; ``aio_pika.pool.Pool`` for the
pool.

``aio-rss`` measures the memory of idle connections in a child process per
measurement (``bench/aio_rss_child.py``). ``aio-codec`` needs no broker: it
compares the AMQP codecs an asyncio transport could use (the choice is
explained in ``docs/asyncio.rst``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cases.common import BODY_100, fill, need, raw_queue
from bench.cases.delivery import delivery_queue, timed_delivery
from bench.harness import AIO_PIKA, BROKERPOOL, Case, Env, Skip, throughput

__all__ = ["cases"]

PREFETCH = 100
#: Idle connections per RSS measurement: RabbitMQ's default file-descriptor limit
#: (1024) leaves it about 830 sockets in all, and other clients need some of them.
RSS_CONNECTIONS = 500
_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _rate(loop: asyncio.AbstractEventLoop, n: int, run: Callable[[int], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    loop.run_until_complete(_awaited(run(n)))
    return throughput(n, time.perf_counter() - started)


async def _awaited(awaitable: Awaitable[Any]) -> None:
    await awaitable


def _aio_pika() -> Any:
    aio_pika = need("aio_pika")
    if not aio_pika.__version__.startswith("10."):
        raise Skip(f"aio-pika {aio_pika.__version__} is installed; these cases compare with 10.x")
    return aio_pika


@contextlib.contextmanager
def _brokerpool_publisher(
    env: Env, case: str, publish: Callable[[Any, Any, str, int], Awaitable[None]]
) -> Iterator[Callable[[], float]]:
    """A connected ``broker.aio`` producer to a queue of its own; ``publish(conn, producer, q, n)``.

    Timed until the broker holds all N (:func:`bench.cases.delivery.timed_delivery`).
    """
    from broker.aio import Connection

    with delivery_queue(env.url, case) as queue, _loop() as loop:
        conn = Connection(env.url)
        producer = conn.Producer(routing_key=queue.name)
        loop.run_until_complete(conn.connect())
        n = env.n(20000, 300)
        try:
            yield lambda: timed_delivery(
                queue, n, lambda: loop.run_until_complete(publish(conn, producer, queue.name, n))
            )
        finally:
            loop.run_until_complete(conn.close())


@contextlib.contextmanager
def _aio_pika_publisher(
    env: Env, case: str, confirms: bool, publish: Callable[[Any, Any, str, int], Awaitable[None]]
) -> Iterator[Callable[[], float]]:
    """An aio-pika channel to a queue of its own; ``publish(aio_pika, channel, q, n)``.

    Timed until the broker holds all N, as for brokerpool.
    """
    aio_pika = _aio_pika()

    async def open_channel() -> tuple[Any, Any]:
        conn = await aio_pika.connect(env.url)
        return conn, await conn.channel(publisher_confirms=confirms)

    with delivery_queue(env.url, case) as queue, _loop() as loop:
        conn, channel = loop.run_until_complete(open_channel())
        n = env.n(20000, 300)
        try:
            yield lambda: timed_delivery(
                queue, n, lambda: loop.run_until_complete(publish(aio_pika, channel, queue.name, n))
            )
        finally:
            loop.run_until_complete(conn.close())


# -- unconfirmed publish ---------------------------------------------------------


async def _publish_unconfirmed(conn: Any, producer: Any, queue: str, n: int) -> None:
    for _ in range(n):
        await producer.publish(BODY_100)


async def _aio_pika_unconfirmed(aio_pika: Any, channel: Any, queue: str, n: int) -> None:
    exchange = channel.default_exchange
    for _ in range(n):
        await exchange.publish(aio_pika.Message(BODY_100), routing_key=queue)


def _publish_brokerpool(env: Env) -> contextlib.AbstractContextManager[Callable[[], float]]:
    return _brokerpool_publisher(env, "aio-publish", _publish_unconfirmed)


def _publish_aio_pika(env: Env) -> contextlib.AbstractContextManager[Callable[[], float]]:
    return _aio_pika_publisher(env, "aio-publish", False, _aio_pika_unconfirmed)


# -- pipelined confirms ------------------------------------------------------------


async def _publish_pipelined(conn: Any, producer: Any, queue: str, n: int) -> None:
    async with producer.confirms(timeout=60):
        for _ in range(n):
            await producer.publish(BODY_100)


async def _aio_pika_gathered(aio_pika: Any, channel: Any, queue: str, n: int) -> None:
    exchange = channel.default_exchange
    await asyncio.gather(
        *(exchange.publish(aio_pika.Message(BODY_100), routing_key=queue) for _ in range(n))
    )


def _confirms_brokerpool(env: Env) -> contextlib.AbstractContextManager[Callable[[], float]]:
    return _brokerpool_publisher(env, "aio-confirms", _publish_pipelined)


def _confirms_aio_pika(env: Env) -> contextlib.AbstractContextManager[Callable[[], float]]:
    return _aio_pika_publisher(env, "aio-confirms", True, _aio_pika_gathered)


# -- consume + ack -------------------------------------------------------------------


@contextlib.contextmanager
def _consume_brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker import Queue
    from broker.aio import Connection

    with raw_queue(env.url, "aio-consume") as (name, filler), _loop() as loop:
        conn = Connection(env.url)
        queue = Queue(name, no_declare=True)
        n = env.n(10000, 200)

        async def run(count: int) -> None:
            seen = 0
            async with conn.Consumer([queue], prefetch_count=PREFETCH) as consumer:
                async for message in consumer:
                    await message.ack()
                    seen += 1
                    if seen == count:
                        break

        def measure() -> float:
            fill(filler, name, n)
            return _rate(loop, n, run)

        try:
            yield measure
        finally:
            loop.run_until_complete(conn.close())


@contextlib.contextmanager
def _consume_aio_pika(env: Env) -> Iterator[Callable[[], float]]:
    aio_pika = _aio_pika()
    with raw_queue(env.url, "aio-consume") as (name, filler), _loop() as loop:
        conn = loop.run_until_complete(aio_pika.connect(env.url))
        n = env.n(10000, 200)

        async def run(count: int) -> None:
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(name, ensure=False)
            seen = 0
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    seen += 1
                    if seen == count:
                        break
            await channel.close()

        def measure() -> float:
            fill(filler, name, n)
            return _rate(loop, n, run)

        try:
            yield measure
        finally:
            loop.run_until_complete(conn.close())


# -- pool acquire + release --------------------------------------------------------------


@contextlib.contextmanager
def _pool_brokerpool(env: Env) -> Iterator[Callable[[], float]]:
    from broker.aio.pools import ResourcePool
    from broker.errors import ConnectionLimitExceeded

    async def create() -> object:
        return object()

    async def dispose(item: object) -> None:
        return None

    with _loop() as loop:
        pool: ResourcePool[object] = ResourcePool(
            create, lambda item: True, dispose, 10, ConnectionLimitExceeded
        )

        async def run(n: int) -> None:
            for _ in range(n):
                async with pool.acquire():
                    pass

        yield lambda: _rate(loop, env.n(100000, 1000), run)


@contextlib.contextmanager
def _pool_aio_pika(env: Env) -> Iterator[Callable[[], float]]:
    pool_module = _aio_pika().pool

    async def create() -> object:
        return object()

    with _loop() as loop:
        pool = pool_module.Pool(create, max_size=10)

        async def run(n: int) -> None:
            for _ in range(n):
                async with pool.acquire():
                    pass

        yield lambda: _rate(loop, env.n(100000, 1000), run)


# -- memory per idle connection ------------------------------------------------------------


def _rss_runner(library: str, module: str) -> Callable[[Env], Any]:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        need(module)
        if library == AIO_PIKA:
            _aio_pika()
        if not os.path.exists("/proc/self/statm"):
            raise Skip("needs /proc/self/statm (Linux)")
        n = env.n(RSS_CONNECTIONS, 20)
        pythonpath = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))

        def measure() -> float:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.aio_rss_child", library, env.url, str(n)],
                cwd=_ROOT,
                env={**os.environ, "PYTHONPATH": pythonpath},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                tail = " ".join(proc.stderr.strip().splitlines()[-1:])
                raise RuntimeError(f"child exited {proc.returncode}: {tail}")
            found = json.loads(proc.stdout.strip().splitlines()[-1])
            if found["opened"] < n:
                sys.stderr.write(f"  aio-rss: {library} opened {found['opened']} of {n}\n")
            value: float = found["kib_per_connection"]
            return value

        yield measure

    return runner


# -- the codec ---------------------------------------------------------------------------


def _deliveries(n: int) -> bytes:
    """``n`` basic.deliver frame sets (method, header, body) as a broker sends them."""
    from amqp import spec
    from amqp.basic_message import Message
    from amqp.serialization import dumps

    from transports.amqp.framing import encode

    args = dumps("sLbss", ("ctag", 1, False, "", "q"))
    deliver = encode(131072, 1, 1, spec.Basic.Deliver, args, Message(BODY_100, delivery_mode=2))
    return deliver * n


@contextlib.contextmanager
def _codec_pyamqp(env: Env) -> Iterator[Callable[[], float]]:
    from amqp.serialization import dumps

    from transports.amqp.aio.frames import FrameDecoder, FrameEncoder, OutgoingMessage

    n = env.n(50000, 500)
    stream = _deliveries(n)
    args = dumps("Bssbb", (0, "", "q", False, False))

    def measure() -> float:
        started = time.perf_counter()
        out = bytearray()
        encoder = FrameEncoder(out.extend, 131072)
        for _ in range(n):
            encoder.publish(1, args, OutgoingMessage(BODY_100, {"delivery_mode": 2}))
        bodies: list[bytes] = []
        FrameDecoder(lambda ch, sig, buf, msg: bodies.append(msg.body)).feed(stream)
        assert len(bodies) == n
        return throughput(n, time.perf_counter() - started)

    yield measure


@contextlib.contextmanager
def _codec_pamqp(env: Env) -> Iterator[Callable[[], float]]:
    need("pamqp")
    from pamqp import body as pbody
    from pamqp import commands, frame, header

    n = env.n(50000, 500)
    stream = _deliveries(n)

    def measure() -> float:
        started = time.perf_counter()
        out = bytearray()
        for _ in range(n):
            props = commands.Basic.Properties(delivery_mode=2)
            out += frame.marshal(commands.Basic.Publish(exchange="", routing_key="q"), 1)
            out += frame.marshal(header.ContentHeader(0, len(BODY_100), props), 1)
            out += frame.marshal(pbody.ContentBody(BODY_100), 1)
        view, pos, bodies = memoryview(stream), 0, 0
        while pos < len(stream):
            size = int.from_bytes(view[pos + 3 : pos + 7], "big") + 8
            _, _, decoded = frame.unmarshal(bytes(view[pos : pos + size]))
            pos += size
            if isinstance(decoded, pbody.ContentBody):
                bodies += 1
        assert bodies == n
        return throughput(n, time.perf_counter() - started)

    yield measure


def _runners(
    mine: Callable[[Env], contextlib.AbstractContextManager[Callable[[], float]]],
    theirs: Callable[[Env], contextlib.AbstractContextManager[Callable[[], float]]],
) -> dict[str, Any]:
    return {BROKERPOOL: mine, AIO_PIKA: theirs}


def cases() -> list[Case]:
    return [
        Case(
            key="aio-publish",
            title="asyncio publish 100 B, unconfirmed",
            unit="msg/s",
            higher_is_better=True,
            runners=_runners(_publish_brokerpool, _publish_aio_pika),
            method=(
                "One connection and one task each; a loop of awaited publishes of a 100-byte "
                "body to the default exchange (a queue of its own, purged before each round), "
                "timed until the broker holds all N (bench/cases/delivery.py). brokerpool: "
                "`await producer.publish(body)`; aio-pika: "
                "`await channel.default_exchange.publish(Message(body), routing_key=q)` on a "
                "channel without publisher confirms."
            ),
            target="≥ 3x aio-pika",
        ),
        Case(
            key="aio-confirms",
            title="asyncio publish 100 B, pipelined confirms",
            unit="msg/s",
            higher_is_better=True,
            runners=_runners(_confirms_brokerpool, _confirms_aio_pika),
            method=(
                "Every message confirmed before the measure ends. brokerpool: awaited "
                "publishes inside `async with producer.confirms():`; aio-pika: "
                "`asyncio.gather` over all publishes on a channel with publisher confirms."
            ),
            target="≥ 2x aio-pika",
        ),
        Case(
            key="aio-consume",
            title="asyncio consume + ack, prefetch 100",
            unit="msg/s",
            higher_is_better=True,
            runners=_runners(_consume_brokerpool, _consume_aio_pika),
            method=(
                "The queue is filled (untimed), then consumed with prefetch 100, acking every "
                "message: brokerpool `async for message in consumer: await message.ack()`, "
                "aio-pika `async for message in queue.iterator(): await message.ack()`."
            ),
            target="≥ 1.5x aio-pika",
        ),
        Case(
            key="aio-pool",
            title="asyncio pool acquire+release, 1 task",
            unit="ops/s",
            higher_is_better=True,
            runners=_runners(_pool_brokerpool, _pool_aio_pika),
            method=(
                "`async with pool.acquire():` on a pool of 10 ready items, one task: "
                "brokerpool's asyncio ResourcePool against aio_pika.pool.Pool."
            ),
            target="≥ 2x aio-pika",
            needs=frozenset(),
        ),
        Case(
            key="aio-rss",
            title="asyncio memory (RSS) per idle connection",
            unit="KiB",
            higher_is_better=False,
            runners={
                BROKERPOOL: _rss_runner(BROKERPOOL, "broker.aio"),
                AIO_PIKA: _rss_runner(AIO_PIKA, "aio_pika"),
            },
            method=(
                "A fresh Python process per measurement runs one event loop, opens one "
                "connection (warm-up), reads RSS from /proc/self/statm, opens 500 more idle "
                "connections to the broker, ten at a time (RabbitMQ's default limit of about "
                "830 sockets, shared with other clients, leaves no room for 1,000), "
                "and reads RSS again; the figure is the difference per connection opened. "
                "brokerpool: `await broker.aio.Connection(url).connect()`; aio-pika: "
                "`await aio_pika.connect(url)`; both with their default heartbeat. 3 rounds."
            ),
            target="≤ aio-pika",
            rounds=3,
            warmup=False,
        ),
        Case(
            key="aio-codec",
            title="AMQP codec: encode publish + decode deliver, 100 B",
            unit="msg/s",
            higher_is_better=True,
            runners=_runners(_codec_pyamqp, _codec_pamqp),
            method=(
                "No broker: encode a basic.publish (method, header and body frames) and decode a "
                "basic.deliver, per message. The brokerpool column is the asyncio transport's "
                "codec: FrameEncoder.publish (frames packed by brokerpool, the property list by "
                "py-amqp's serializer, kept once encoded, as for every publish) and FrameDecoder "
                "(py-amqp's frame handler); the aio-pika column is pamqp, the codec under aiormq "
                "and aio-pika."
            ),
            needs=frozenset(),
        ),
    ]
