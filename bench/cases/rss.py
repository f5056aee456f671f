"""Case 10: resident memory per pooled connection, one subprocess per measurement."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.cases.common import need
from bench.harness import BROKERPOOL, KOMBU, PIKA, RAW, Case, Env, Runner, Skip

__all__ = ["cases"]

_ROOT = Path(__file__).resolve().parents[2]
_MODULES = {BROKERPOOL: "broker", KOMBU: "kombu", RAW: "amqp", PIKA: "pika"}


def _runner(library: str) -> Runner:
    @contextlib.contextmanager
    def runner(env: Env) -> Iterator[Callable[[], float]]:
        need(_MODULES[library])
        if not os.path.exists("/proc/self/statm"):
            raise Skip("needs /proc/self/statm (Linux)")
        n = env.n(50, 5)
        pythonpath = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))

        def measure() -> float:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.rss_child", library, env.url, str(n)],
                cwd=_ROOT,
                env={**os.environ, "PYTHONPATH": pythonpath},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                tail = " ".join(proc.stderr.strip().splitlines()[-1:])
                raise RuntimeError(f"child exited {proc.returncode}: {tail}")
            value: float = json.loads(proc.stdout.strip().splitlines()[-1])["kib_per_connection"]
            return value

        yield measure

    return runner


def cases() -> list[Case]:
    return [
        Case(
            key="rss",
            title="memory (RSS) per pooled connection",
            unit="KiB",
            higher_is_better=False,
            runners={lib: _runner(lib) for lib in (BROKERPOOL, KOMBU, RAW, PIKA)},
            method=(
                "A fresh Python process per measurement opens one connection (warm-up), "
                "reads RSS from /proc/self/statm, opens 50 more connected connections and "
                "reads RSS again; the figure is the difference divided by 50. brokerpool and "
                "kombu open them through their connection pools (limit 51); py-amqp and pika "
                "have no pool and keep a list. 3 rounds."
            ),
            rounds=3,
            warmup=False,
        )
    ]
