"""Run a scenario of :mod:`tests.gevent.scenarios` in a child interpreter and read its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_scenario"]

_ROOT = Path(__file__).resolve().parents[2]


def run_scenario(
    *args: str, timeout: float = 150.0, on_ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """``python -m tests.gevent.scenarios *args``; the JSON line it printed last.

    ``on_ready()`` runs when the child prints ``READY`` (the failover scenario
    waits for it to kill a node). A child that fails or prints no result fails
    the test with its output.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "tests.gevent.scenarios", *args],
        cwd=_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        for line in child.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "READY" and on_ready is not None:
                on_ready()
        child.wait(timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    output = "\n".join(lines[-30:])
    assert child.returncode == 0, f"the scenario failed:\n{output}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
