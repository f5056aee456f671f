"""Case 14: 32 threads publishing through one connection, against kombu's pool of connections.

RabbitMQ's advice is few connections, many channels; kombu users open a
connection per thread instead (``kombu.pools.producers`` with a pool of
connections), because py-amqp corrupts frames when threads share one. Here
32 threads publish 100-byte messages, with a publisher confirm per message
or unconfirmed, through:

* ``bp-channels``: one brokerpool connection and its ``ChannelPool(32)``,
  each thread on a channel of its own;
* ``bp-pool8``: brokerpool's ``pools.producers`` with a pool of 8
  connections (a producer acquired per message, as kombu users do);
* ``kombu-pool8``: kombu's ``pools.producers`` with a pool of 8 connections;
* ``bp-1``: one brokerpool thread on one connection (the single-thread reference).

Every figure counts delivery on the broker (:mod:`bench.cases.delivery`):
the clock stops when the queue holds all N messages. ``python -m bench``
runs the two headline rows (``threads-confirm``, ``threads-publish``:
brokerpool's one connection against kombu's eight); ``python -m
bench.cases.threads`` runs every variant side by side, interleaved, each
measurement in a fresh interpreter, and adds what each one costs: the TCP
connections it held to the broker and the resident memory it grew by.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cases.common import BODY_100, need
from bench.cases.delivery import DeliveryQueue, delivery_queue, timed_delivery
from bench.harness import BROKERPOOL, KOMBU, Case, Env, Runner

__all__ = ["VARIANTS", "broker_connections", "cases", "main", "measure"]

THREADS = 32
#: Messages per thread in a round: per-message confirms, and unconfirmed.
CONFIRMED, UNCONFIRMED = 100, 1000
QUICK_CONFIRMED, QUICK_UNCONFIRMED = 10, 50
POOL = 8


def broker_connections(port: int = 5672) -> int:
    """TCP connections this process holds to ``port`` (Linux ``/proc``; -1 elsewhere)."""
    try:
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        count = 0
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                        count += 1
        return count
    except OSError:
        return -1


def _in_threads(threads: int, work: Callable[[int], None]) -> Callable[[], None]:
    """``publish_all`` for :func:`timed_delivery`: ``work(i)`` on ``threads`` threads."""

    def publish_all() -> None:
        errors: list[BaseException] = []

        def body(i: int) -> None:
            try:
                work(i)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]

    return publish_all


# -- the variants: each sets up (untimed), yields publish_all(queue, n_each), tears down --------

Publisher = Callable[[DeliveryQueue, int], Callable[[], None]]


@contextlib.contextmanager
def _bp_channels(url: str, confirm: bool, threads: int) -> Iterator[Publisher]:
    from broker import Connection, Producer

    with Connection(url) as conn:
        pool = conn.ChannelPool(threads, preload=threads)

        def make(queue: DeliveryQueue, each: int) -> Callable[[], None]:
            def work(i: int) -> None:
                with pool.acquire(block=True, timeout=30) as channel:
                    producer = Producer(channel, routing_key=queue.name, confirm_publish=confirm)
                    for _ in range(each):
                        producer.publish(BODY_100)

            return _in_threads(threads, work)

        yield make
        pool.close()


@contextlib.contextmanager
def _bp_pool(url: str, confirm: bool, threads: int) -> Iterator[Publisher]:
    import pools
    from broker import Connection

    pools.set_limit(POOL)
    options = {"confirm_publish": confirm}
    with Connection(url, transport_options=options) as conn:
        group = pools.producers[conn]

        def make(queue: DeliveryQueue, each: int) -> Callable[[], None]:
            def work(i: int) -> None:
                for _ in range(each):
                    with group.acquire(block=True, timeout=30) as producer:
                        producer.publish(BODY_100, routing_key=queue.name)

            return _in_threads(threads, work)

        yield make
        pools.reset()


@contextlib.contextmanager
def _kombu_pool(url: str, confirm: bool, threads: int) -> Iterator[Publisher]:
    kombu = need("kombu")
    kombu_pools = need("kombu.pools")
    kombu_pools.set_limit(POOL)
    options = {"confirm_publish": confirm}
    with kombu.Connection(url, transport_options=options) as conn:
        group = kombu_pools.producers[conn]

        def make(queue: DeliveryQueue, each: int) -> Callable[[], None]:
            def work(i: int) -> None:
                for _ in range(each):
                    with group.acquire(block=True, timeout=30) as producer:
                        producer.publish(BODY_100, routing_key=queue.name)

            return _in_threads(threads, work)

        yield make
        kombu_pools.reset()


#: name -> (set-up, confirmed?, threads).
VARIANTS: dict[str, tuple[Callable[..., Any], bool, int]] = {
    "bp-channels-confirm": (_bp_channels, True, THREADS),
    "bp-pool8-confirm": (_bp_pool, True, THREADS),
    "kombu-pool8-confirm": (_kombu_pool, True, THREADS),
    "bp-channels-publish": (_bp_channels, False, THREADS),
    "bp-1-publish": (_bp_channels, False, 1),
    "kombu-pool8-publish": (_kombu_pool, False, THREADS),
}


@contextlib.contextmanager
def _variant(name: str, url: str, quick: bool) -> Iterator[Callable[[], float]]:
    setup, confirm, threads = VARIANTS[name]
    each = (
        (QUICK_CONFIRMED if quick else CONFIRMED)
        if confirm
        else (QUICK_UNCONFIRMED if quick else UNCONFIRMED)
    )
    if threads == 1:
        each *= THREADS  # the same number of messages as the 32 threads send
    with delivery_queue(url, "threads") as queue, setup(url, confirm, threads) as make:
        publish_all = make(queue, each)
        yield lambda: timed_delivery(queue, each * threads, publish_all)


def measure(name: str, url: str, quick: bool = False) -> dict[str, Any]:
    """One round of variant ``name`` in this process: rate, broker connections, RSS growth.

    The libraries are imported first, so the growth is what the connections,
    channels, pools and threads cost.
    """
    import broker.connection.connection  # noqa: F401
    import pools  # noqa: F401

    with contextlib.suppress(ImportError):
        import kombu.pools  # noqa: F401
    before = _rss_kib()
    with _variant(name, url, quick) as round_:
        rate = round_()
        connections = broker_connections() - 1  # less delivery_queue's counting connection
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"variant": name, "msg_s": rate, "connections": connections,
            "rss_growth_kib": max(peak - before, 0)}  # fmt: skip


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _runner(name: str) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        with _variant(name, env.url, env.quick) as round_:
            yield round_

    return runner


def cases() -> list[Case]:
    shared = (
        "32 threads publish 100-byte messages ({what}) to a queue of their own; the clock "
        "stops when the broker holds all of them. brokerpool: one connection, ChannelPool(32), "
        "each thread a channel of its own and a Producer on it. kombu: kombu.pools.producers "
        "with a limit of 8 connections, a producer acquired per message (kombu's answer to "
        "threads, since py-amqp connections cannot be shared). python -m bench.cases.threads "
        "adds brokerpool's own pools.producers(8) and the single-thread rate, with connection "
        "counts and RSS."
    )
    return [
        Case(
            key="threads-confirm",
            title="32 threads, confirm per message, 1 conn vs kombu's 8",
            unit="msg/s",
            higher_is_better=True,
            runners={
                BROKERPOOL: _runner("bp-channels-confirm"),
                KOMBU: _runner("kombu-pool8-confirm"),
            },
            method=shared.format(what=f"{CONFIRMED} each, a publisher confirm per message"),
            target="≥ 3x kombu",
        ),
        Case(
            key="threads-publish",
            title="32 threads, unconfirmed, 1 conn vs kombu's 8",
            unit="msg/s",
            higher_is_better=True,
            runners={
                BROKERPOOL: _runner("bp-channels-publish"),
                KOMBU: _runner("kombu-pool8-publish"),
            },
            method=shared.format(what=f"{UNCONFIRMED} each, unconfirmed"),
            target="≥ 0.9x brokerpool's 1 thread",
        ),
    ]


# -- python -m bench.cases.threads: every variant side by side, one interpreter each -----------

_ROOT = Path(__file__).resolve().parents[2]


def _child(name: str, url: str, quick: bool) -> dict[str, Any]:
    path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "bench.cases.threads", "--child", name, "--url", url]
    proc = subprocess.run(
        argv + (["--quick"] if quick else []),
        cwd=_ROOT, env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _table(results: dict[str, list[dict[str, Any]]]) -> str:
    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[name]))

    lines = ["| variant | msg/s (median, lowest-highest) | connections | RSS growth (KiB) |",
             "|---|---|---|---|"]  # fmt: skip
    for name, rows in results.items():
        rates = [r["msg_s"] for r in rows]
        lines.append(
            f"| {name} | {statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
            f"| {median(name, 'connections'):.0f} | {median(name, 'rss_growth_kib'):,.0f} |"
        )
    ratios = [
        ("bp-channels-confirm", "kombu-pool8-confirm", "≥ 3"),
        ("bp-channels-confirm", "bp-pool8-confirm", "≥ 1"),
        ("bp-channels-publish", "bp-1-publish", "≥ 0.9"),
        ("bp-channels-publish", "kombu-pool8-publish", ""),
    ]
    lines.append("")
    for mine, other, target in ratios:
        if mine in results and other in results:
            per_round = [
                a["msg_s"] / b["msg_s"] for a, b in zip(results[mine], results[other], strict=True)
            ]
            lines.append(
                f"* {mine} ÷ {other}: {median(mine, 'msg_s') / median(other, 'msg_s'):.2f}x "
                f"(rounds {min(per_round):.2f}-{max(per_round):.2f}) {target}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.threads")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.url, args.quick)))
        return 0
    names = list(VARIANTS)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        shift = round_no % len(names)  # rotate: nobody always runs first
        for name in names[shift:] + names[:shift]:
            results[name].append(_child(name, args.url, args.quick))
            sys.stderr.write(f"round {round_no + 1}: {results[name][-1]}\n")
    print(_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
