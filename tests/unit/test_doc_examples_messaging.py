"""The publishing and consuming guides' samples run against memory://."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
SAMPLES = sorted([*EXAMPLES.glob("publishing_*.py"), *EXAMPLES.glob("consuming_*.py")])


def test_the_guides_have_samples() -> None:
    names = {p.name for p in SAMPLES}
    assert {"publishing_confirms.py", "publishing_batch.py", "consuming_threads.py"} <= names


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_runs_on_memory(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = path.read_text()
    assert 'Connection("memory://")' in source, "guide samples run on the embedded broker"
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out, "every sample shows what it did"


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_is_included_by_its_guide(path: Path) -> None:
    guide = "publishing.rst" if path.name.startswith("publishing_") else "consuming.rst"
    text = (EXAMPLES.parent / guide).read_text()
    assert f".. literalinclude:: examples/{path.name}" in text
