"""The oldest redis-py the ``redis`` extra allows really works.

The suite itself runs the newest redis-py the extra allows (``make test``
installs it). This test reads the floor from ``pyproject.toml``, installs
exactly that release (and the package's declared dependencies) into a
scratch venv from the same pip index, and runs a short connect / publish /
get / ack script there against the machine's Redis, with this checkout on
``PYTHONPATH``. It needs the pip index: deselect it offline with
``-m 'not pip_index'``; under ``CI=true`` not being able to install fails it.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import skip_or_fail

pytestmark = [pytest.mark.redis, pytest.mark.pip_index, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys

import redis

from broker import Connection

floor, url, prefix = sys.argv[1:]
assert redis.__version__ == floor, (redis.__version__, floor)
with Connection(url, transport_options={"key_prefix": prefix}) as conn:
    queue = conn.SimpleQueue("floor")
    queue.put({"n": 1})
    message = queue.get(timeout=5)
    assert message.payload == {"n": 1}, message.payload
    message.ack()
    queue.close()
print("ok", redis.__version__)
"""


def project() -> dict[str, Any]:
    """The ``[project]`` table of ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, Any] = tomllib.load(f)["project"]
    return table


def redis_requirement(extra: str) -> str:
    """The redis-py requirement of ``extra``, e.g. ``'redis>=7.2,<8.2'``."""
    found = [r for r in project()["optional-dependencies"][extra] if re.match(r"redis\b", r)]
    assert len(found) == 1, f"one redis requirement expected in [{extra}], got {found}"
    return str(found[0])


def floor_of(requirement: str) -> str:
    match = re.search(r">=\s*([\w.]+)", requirement)
    assert match, f"{requirement!r} declares no floor (>=)"
    return match.group(1)


def normalized(version: str) -> str:
    """``7.2`` as redis-py spells its own version (``7.2.0``)."""
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def test_every_extra_allows_the_same_redis_py() -> None:
    declared = redis_requirement("redis")

    assert redis_requirement("test") == declared
    assert redis_requirement("bench") == declared
    assert "<" in declared, f"{declared!r} has no tested upper bound"


def test_the_declared_floor_connects_publishes_and_gets(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    floor = floor_of(redis_requirement("redis"))
    pin = f"redis=={floor}"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    dependencies = [str(d) for d in project()["dependencies"]]
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         pin, *dependencies],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    if installed.returncode != 0:
        skip_or_fail(f"could not install {pin} from the pip index: {installed.stderr[-2000:]}")

    done = subprocess.run(
        [str(python), "-c", SCRIPT, normalized(floor), redis_url, redis_key_prefix],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", normalized(floor)]
