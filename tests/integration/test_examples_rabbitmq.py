"""The documentation's samples run one after another on one RabbitMQ.

Each sample runs on ``memory://`` in ``tests/unit/test_doc_examples.py``; a
reader runs them against a real broker, where they share it: a queue one
sample declares durable and another declares transient (or auto-deleted)
makes the second fail with ``406 PRECONDITION_FAILED``. Here the README's
sample and then every ``memory://`` sample run, in order, against one extra
RabbitMQ node of the test's own (the machine's node is left alone: the
samples declare durable queues with everyday names such as ``tasks``).
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rabbitnode import RabbitNode, require_extra_nodes

pytestmark = [pytest.mark.broker, pytest.mark.extra_nodes, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MEMORY = 'Connection("memory://"'


def samples() -> list[tuple[str, str]]:
    """(name, code) of the README's Python samples, then of every memory:// example."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = [
        (f"README.md#{n}", re.sub(r'Connection\("[^"]*"', MEMORY, block))
        for n, block in enumerate(re.findall(r"```python\n(.*?)```", readme, flags=re.S), 1)
    ]
    for path in sorted((ROOT / "examples").glob("*.py")):
        code = path.read_text(encoding="utf-8")
        if MEMORY in code:
            found.append((path.name, code))
    return found


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    require_extra_nodes()
    rabbit = RabbitNode()
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.close()


def test_the_samples_run_one_after_another_on_one_broker(node: RabbitNode) -> None:
    failures = []
    ran = []
    for name, code in samples():
        on_rabbit = code.replace(MEMORY, f'Connection("{node.url}"')
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(on_rabbit, name, "exec"), {"__name__": "__main__"})
        except Exception:
            failures.append(f"{name}:\n{traceback.format_exc(limit=3)}")
        ran.append(name)

    assert "README.md#1" in ran and "ensure.py" in ran
    assert not failures, "\n".join(failures)
