"""Every code sample in the docs (examples/*.py) and the README runs.

Samples named ``*_rabbitmq.py`` need the local RabbitMQ. Samples named
``*_redis.py`` need the local Redis: they use its test database
(``REDIS_URL``), keep every key under a ``KEY_PREFIX`` of their own and must
delete those keys before they end. The rest run on ``memory://`` or against
nothing at all.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from tests.support.services import (
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_keys,
    require_service,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_doc_example_runs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if path.stem.endswith("_rabbitmq"):
        require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    if path.stem.endswith("_redis"):
        require_service("Redis", REDIS_HOST, REDIS_PORT)
    namespace = runpy.run_path(str(path), run_name="__main__")
    if path.stem.endswith("_redis"):
        assert namespace.get("URL") == REDIS_URL, f"{path.name} must use URL = {REDIS_URL!r}"
        prefix = namespace.get("KEY_PREFIX")
        assert isinstance(prefix, str) and prefix, f"{path.name} must set a KEY_PREFIX"
        left = delete_redis_keys(prefix)
        assert left == 0, f"{path.name} left {left} keys under {prefix!r} in Redis"


def test_every_example_is_included_by_a_docs_page() -> None:
    pages = "".join(p.read_text() for p in (ROOT / "docs").glob("*.rst"))
    missing = [p.name for p in EXAMPLES if f"examples/{p.name}" not in pages]
    assert not missing, f"examples no page includes: {missing}"


def test_readme_quickstart_runs_on_memory() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python sample"
    for block in blocks:
        code = re.sub(r'Connection\("[^"]*"', 'Connection("memory://"', block)
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


def test_docs_have_no_inline_python_that_escapes_the_tests() -> None:
    """Python samples live in examples/ (and run above), never inline in a page."""
    offenders = []
    for page in sorted((ROOT / "docs").glob("*.rst")):
        text = page.read_text()
        if ".. code-block:: python" in text or re.search(r"::\n\n\s+(from|import) \w", text):
            offenders.append(page.name)
    assert not offenders, f"inline Python samples in {offenders}: move them to examples/"
