"""``python -m bench``: run the side-by-side benchmarks and write the reports."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.cases import all_cases
from bench.cases.redis import DEFAULT_URL as DEFAULT_REDIS_URL
from bench.cases.redis import server_version
from bench.harness import Case, CaseResult, run_case
from bench.machine import describe
from bench.report import write_reports
from broker.cli.arguments import integer

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_ROUNDS = 5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure brokerpool, kombu, py-amqp and pika side by side, in one run.",
    )
    p.add_argument("--url", default=DEFAULT_URL, help="RabbitMQ to measure against")
    p.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis for the redis* cases (default {DEFAULT_REDIS_URL})",
    )
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    p.add_argument(
        "--rounds",
        type=integer(1),
        default=None,
        help=f"rounds per case (default {DEFAULT_ROUNDS}; 2 with --quick)",
    )
    p.add_argument(
        "--cases", default="", help="comma-separated case keys or prefixes (default: all)"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="directory for results.md/.rst/.png (default: the bench/ package)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    return p


def select(cases: Sequence[Case], spec: str) -> list[Case]:
    """The cases named by ``spec`` (keys or key prefixes, comma-separated)."""
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    if not wanted:
        return list(cases)
    chosen = [c for c in cases if any(c.key == w or c.key.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(c.key == w or c.key.startswith(w) for c in cases)]
    if unknown:
        known = ", ".join(c.key for c in cases)
        raise SystemExit(f"python -m bench: unknown case(s) {', '.join(unknown)}; known: {known}")
    return chosen


def _broker_up(url: str, default_port: int = 5672) -> bool:
    from broker.url.parse import parse_url

    p = parse_url(url)
    try:
        with socket.create_connection(
            (p.hostname or "127.0.0.1", p.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cases = select(all_cases(), args.cases)
    if args.list:
        for c in cases:
            print(f"{c.key:14} {c.title}")
        return 0
    rounds = args.rounds or (2 if args.quick else DEFAULT_ROUNDS)
    broker_up = _broker_up(args.url)
    wants_redis = any("redis" in case.needs for case in cases)
    redis_up = wants_redis and _broker_up(args.redis_url, 6379)
    results: list[CaseResult] = []
    started = time.monotonic()
    for case in cases:
        sys.stderr.write(f"[bench] {case.key}: {case.title}\n")
        url = args.redis_url if "redis" in case.needs else args.url
        if "rabbitmq" in case.needs and not broker_up:
            res = CaseResult(case, error=f"no broker answering at {args.url}")
        elif "redis" in case.needs and not redis_up:
            res = CaseResult(case, error=f"no Redis answering at {args.redis_url}")
        else:
            res = run_case(case, url, args.quick, rounds, verbose=args.verbose)
        results.append(res)
        _summary(res)
    uses_broker = any(case.needs - {"redis"} for case in cases)
    facts = describe(args.url, ask_broker=uses_broker)
    if wants_redis:
        facts["redis"] = server_version(args.redis_url)
    paths = write_reports(results, facts, args.out)
    sys.stderr.write(
        f"[bench] done in {time.monotonic() - started:.0f} s; wrote "
        + ", ".join(str(p) for p in paths)
        + "\n"
    )
    return 0


def _summary(res: CaseResult) -> None:
    parts = []
    for lib in res.samples:
        median = res.median(lib)
        parts.append(f"{lib}={median:,.3f}" if median is not None else f"{lib}=?")
    for lib, reason in res.skipped.items():
        parts.append(f"{lib} skipped ({reason})")
    if res.error:
        parts.append(f"NOT RUN ({res.error})")
    sys.stderr.write(f"[bench]   {res.case.unit}: {'; '.join(parts)} ({res.seconds:.1f} s)\n")


if __name__ == "__main__":
    raise SystemExit(main())
