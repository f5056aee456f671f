"""``make demo`` installs only what ``brokerpool demo`` needs, and the demo needs only that.

The package's own dependencies are amqp and vine; the test extra (kombu,
pika, matplotlib, hypothesis, redis, ...) is for ``make test`` alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Distributions of the extras, by the module each one installs.
EXTRAS_MODULES = ("kombu", "pika", "matplotlib", "hypothesis", "redis", "cryptography", "pytest")


def make_dry_run(target: str) -> list[str]:
    """The commands ``make TARGET`` would run from scratch (``-n -B``: print, all out of date)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", "-B", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def test_make_demo_installs_the_package_without_extras() -> None:
    installs = [line for line in make_dry_run("demo") if "pip install" in line]

    assert installs[-1].endswith("pip install --quiet -e .")
    assert not any("[" in line for line in installs), installs


def test_make_test_still_installs_the_test_extra() -> None:
    installs = [line for line in make_dry_run("test") if "pip install" in line]

    assert any(line.endswith("-e '.[test]'") for line in installs), installs


def test_the_demo_imports_nothing_from_the_extras() -> None:
    script = (
        "import sys\n"
        "from broker.cli.main import main\n"
        "code = main(['demo'])\n"
        f"loaded = sorted(m for m in {EXTRAS_MODULES!r} if m in sys.modules)\n"
        "print(code, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"
