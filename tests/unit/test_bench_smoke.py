"""The benchmark harness runs end to end (``python -m bench --quick``) and writes its reports.

Only cases that need no broker run here (memory transport round trip, pool
acquire/release on memory://); timings are never asserted, only that each
library produced a figure and the report files have the expected rows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.__main__ import main, select
from bench.cases import all_cases
from bench.harness import BROKERPOOL, KOMBU, Case, CaseResult, Skip, run_case
from bench.report import DASH, render_markdown, render_rst

CASES = "memory,pool-memory"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert main(["--quick", "--cases", CASES, "--out", str(out)]) == 0
    return out


def table_row(markdown: str, title: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == title:
            return cells
    raise AssertionError(f"no row {title!r} in:\n{markdown}")


def test_quick_run_writes_markdown_and_rst(reports: Path) -> None:
    assert (reports / "results.md").stat().st_size > 0
    assert (reports / "results.rst").stat().st_size > 0


def test_quick_run_draws_the_chart(reports: Path) -> None:

    assert (reports / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_has_machine_facts_and_a_row_per_case(reports: Path) -> None:
    md = (reports / "results.md").read_text(encoding="utf-8")

    for label in ("machine", "kernel", "python", "kombu", "amqp (py-amqp)", "date"):
        assert f"- **{label}**:" in md
    header = table_row(md, "Case")
    assert header[3:5] == [BROKERPOOL, KOMBU]
    for title in ("memory:// put + get + ack", "pool acquire+release, memory://, 1 thread"):
        row = table_row(md, title)
        assert row[2] == "higher"
        # median (lowest-highest round), measured for brokerpool and kombu
        assert re.fullmatch(rf"[\d,]+( \([\d,]+{DASH}[\d,]+\))?", row[3]), row
        assert re.fullmatch(rf"[\d,]+( \([\d,]+{DASH}[\d,]+\))?", row[4]), row
        # bp ÷ kombu: the ratio of medians (the lowest-highest per-round ratio)
        assert re.fullmatch(rf"\d+\.\d\dx( \(\d+\.\d\d{DASH}\d+\.\d\d\))?", row[7]), row
        assert row[8] == "—"  # no raw py-amqp on memory://
    assert "## Method" in md


def test_rst_fragment_is_a_list_table(reports: Path) -> None:
    rst = (reports / "results.rst").read_text(encoding="utf-8")

    assert ".. list-table::" in rst
    assert "   * - memory:// put + get + ack" in rst


def test_select_by_key_or_prefix_and_reject_unknown() -> None:
    cases = all_cases()

    assert [c.key for c in select(cases, "scale")] == [
        "scale-1",
        "scale-8",
        "scale-64",
        "scale-256",
    ]
    assert [c.key for c in select(cases, "memory")] == ["memory"]
    with pytest.raises(SystemExit, match="unknown case"):
        select(cases, "nope")


def test_every_requested_case_exists() -> None:
    keys = {c.key for c in all_cases()}

    assert {"connect", "pool-1", "pool-32", "publish", "confirm", "pipelined", "pipelined-raw",
            "consume", "memory", "redis", "redis-consume", "failover", "heartbeat",
            "rss"} <= keys  # fmt: skip


def test_a_skipping_or_failing_library_is_recorded_not_fatal() -> None:
    import contextlib

    @contextlib.contextmanager
    def skips(env: object):  # type: ignore[no-untyped-def]
        raise Skip("not here")
        yield

    @contextlib.contextmanager
    def fails(env: object):  # type: ignore[no-untyped-def]
        def measure() -> float:
            raise RuntimeError("boom")

        yield measure

    @contextlib.contextmanager
    def works(env: object):  # type: ignore[no-untyped-def]
        yield lambda: 2.0

    case = Case("t", "test case", "ops/s", True, {BROKERPOOL: works, KOMBU: fails, "pika": skips},
                method="m")  # fmt: skip
    result = run_case(case, url="memory://", quick=True, rounds=3)

    assert result.samples == {BROKERPOOL: [2.0, 2.0, 2.0]}
    assert result.skipped == {KOMBU: "failed: RuntimeError: boom", "pika": "not here"}
    md = render_markdown([result], {"date": "today"})
    assert "| test case | ops/s | higher | 2 | FAILED | n/a | skipped | — | — |  |" in md
    assert "kombu failed: RuntimeError: boom." in md
    assert "pika skipped: not here." in md
    assert ".. list-table::" in render_rst([result], {})


def test_ratio_and_advantage_follow_the_direction_of_better() -> None:
    def result(higher: bool) -> CaseResult:
        case = Case("t", "t", "ms", higher, {}, method="m")
        return CaseResult(case, samples={BROKERPOOL: [2.0, 2.0, 9.0], KOMBU: [4.0]})

    assert result(True).ratio(KOMBU) == 0.5
    assert result(True).advantage(KOMBU) == 0.5
    assert result(False).advantage(KOMBU) == 2.0
    assert result(False).ratio("py-amqp") is None


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_a_senseless_round_count_is_a_usage_error(rounds: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--rounds", rounds, "--list"])

    assert exited.value.code == 2
