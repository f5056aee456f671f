"""The README's figures are generated from ``bench/results.md``, with their spread.

The README block must equal what ``python -m bench.readme`` makes of the
committed results; the results file carries every figure's range over the
rounds, and the generator turns each ratio into "times better" with its range.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.cases import all_cases
from bench.harness import AIO_PIKA, BROKERPOOL, KOMBU, RAW, Case, CaseResult, Env, Runner, Spread
from bench.readme import BEGIN, END, main, parse_results, render_block, replace_block
from bench.report import DASH, render_markdown

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def never_run(env: Env) -> Iterator[Callable[[], float]]:
    raise AssertionError("these results are made up; nothing is measured")
    yield


def result(
    title: str, unit: str, higher: bool, samples: dict[str, list[float]], **skipped: str
) -> CaseResult:
    """A made-up result of a case that brokerpool, kombu and py-amqp take part in."""
    runners: dict[str, Runner] = {lib: never_run for lib in (BROKERPOOL, KOMBU, RAW)}
    case = Case(title.split()[0], title, unit, higher, runners, method="m")
    return CaseResult(case, samples=samples, skipped=skipped)


def block_rows(block: str) -> dict[str, list[str]]:
    rows = {}
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith("| case"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


# -- the committed README ------------------------------------------------------------


def test_the_readme_figures_are_generated_from_the_committed_results() -> None:
    results = parse_results((ROOT / "bench" / "results.md").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    block = render_block(results)

    assert block in readme, "README.md is out of date: run python -m bench.readme"
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1


def test_the_readme_shows_every_case_of_the_results() -> None:
    results = parse_results((ROOT / "bench" / "results.md").read_text(encoding="utf-8"))

    shown = block_rows(render_block(results))

    assert list(shown) == [row.case for row in results.rows]
    assert "connect + close" in shown  # a case brokerpool loses is shown too


def test_check_mode_reports_a_stale_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold figures\n{END}\n", encoding="utf-8")
    results = str(ROOT / "bench" / "results.md")

    assert main(["--results", results, "--readme", str(readme), "--check"]) == 1
    assert main(["--results", results, "--readme", str(readme)]) == 0
    assert main(["--results", results, "--readme", str(readme), "--check"]) == 0
    assert readme.read_text(encoding="utf-8").startswith("# x\n\n" + BEGIN)


# -- spread over rounds ----------------------------------------------------------------


def test_spread_and_per_round_ratios() -> None:
    res = result(
        "pool 32", "ops/s", True, {BROKERPOOL: [700.0, 800.0, 900.0], KOMBU: [200.0, 40.0, 100.0]}
    )

    assert res.spread(BROKERPOOL) == Spread(700.0, 800.0, 900.0)
    assert res.round_ratios(KOMBU) == [3.5, 20.0, 9.0]
    # The ratio of medians (800 / 100), between the lowest and highest round.
    assert res.ratio_spread(KOMBU) == Spread(3.5, 8.0, 20.0)
    assert res.ratio_spread(RAW) is None


def test_inverted_spread_flips_the_range() -> None:
    assert Spread(0.5, 1.0, 2.0).inverted() == Spread(0.5, 1.0, 2.0)
    assert Spread(1.25, 2.0, 4.0).inverted() == Spread(0.25, 0.5, 0.8)


def test_results_md_shows_medians_with_their_range() -> None:
    res = result(
        "pool 32", "ops/s", True, {BROKERPOOL: [700.0, 800.0, 900.0], KOMBU: [200.0, 40.0, 100.0]}
    )

    md = render_markdown([res], {"date": "today"})

    assert f"| pool 32 | ops/s | higher | 800 (700{DASH}900) | 100 (40{DASH}200) | — | n/a |" in md
    assert f"| 8.00x (3.50{DASH}20.00) |" in md
    assert "lowest and highest per-round ratio" in md


# -- from results.md to the README block ---------------------------------------------


def test_parse_reads_what_the_report_writes() -> None:
    res = result("connect", "ms", False, {BROKERPOOL: [2.0, 2.5, 3.0], KOMBU: [1.0, 2.0, 2.0]})

    parsed = parse_results(render_markdown([res], {"date": "today", "machine": "2 CPUs"}))

    assert parsed.facts == {"date": "today", "machine": "2 CPUs"}
    (row,) = parsed.rows
    assert (row.case, row.unit, row.higher_is_better) == ("connect", "ms", False)
    assert row.brokerpool == f"2.50 (2.00{DASH}3.00)"
    assert row.ratios == {"kombu": f"1.25x (1.25{DASH}2.00)", "py-amqp": "—", "aio-pika": "—"}


def test_a_time_ratio_becomes_times_faster_with_its_range_flipped() -> None:
    res = result("connect", "ms", False, {BROKERPOOL: [2.0, 2.5, 3.0], KOMBU: [1.0, 2.0, 2.0]})

    rows = block_rows(render_block(parse_results(render_markdown([res], {"date": "d"}))))

    # bp ÷ kombu is 1.25 (1.25-2.00) in ms: brokerpool is slower, 0.80x (0.50-0.80).
    assert rows["connect"] == ["2.50 ms", f"0.80x (0.50{DASH}0.80)", "—", "—"]


def test_a_throughput_ratio_is_shown_as_it_is() -> None:
    res = result(
        "publish", "msg/s", True, {BROKERPOOL: [30.0, 20.0], KOMBU: [10.0, 10.0], RAW: [20.0, 20.0]}
    )

    rows = block_rows(render_block(parse_results(render_markdown([res], {"date": "d"}))))

    assert rows["publish"] == [
        "25 msg/s",
        f"2.50x (2.00{DASH}3.00)",
        f"1.25x (1.00{DASH}1.50)",
        "—",
    ]


def test_a_library_that_did_not_run_says_so() -> None:
    res = result(
        "redis", "ops/s", True, {BROKERPOOL: [5.0, 5.0]}, **{KOMBU: "failed: RuntimeError: x"}
    )
    res.case.runners.pop(RAW)

    rows = block_rows(render_block(parse_results(render_markdown([res], {"date": "d"}))))

    assert rows["redis"] == ["5 ops/s", "kombu FAILED", "—", "—"]


def test_the_intro_names_the_run() -> None:
    md = render_markdown([], {"date": "2026-01-02", "machine": "2 CPUs", "broker": "RabbitMQ 3"})

    block = render_block(parse_results(md))

    assert block.startswith(BEGIN) and block.endswith(END)
    assert "From the run of 2026-01-02 (2 CPUs, RabbitMQ 3)" in block
    assert "Above 1 favours brokerpool" in block


def test_replace_block_keeps_the_rest_of_the_readme() -> None:
    readme = f"before\n{BEGIN}\nold\n{END}\nafter\n"

    assert replace_block(readme, f"{BEGIN}\nnew\n{END}") == f"before\n{BEGIN}\nnew\n{END}\nafter\n"
    with pytest.raises(ValueError, match="no block"):
        replace_block("no markers here", "x")


# -- honest labels -----------------------------------------------------------------------


def test_the_pipelined_comparisons_say_what_they_compare() -> None:
    cases = {case.key: case for case in all_cases()}

    change_of_mode = cases["pipelined"]
    like_for_like = cases["pipelined-raw"]

    assert "change of mode" in change_of_mode.title
    assert set(change_of_mode.runners) == {BROKERPOOL, KOMBU}
    assert "hand-written py-amqp pipeline" in like_for_like.title
    assert set(like_for_like.runners) == {BROKERPOOL, RAW}


def test_no_case_says_checkout_verifies_the_socket() -> None:
    for case in all_cases():
        assert "checks that the socket is still alive" not in case.method, case.key
    pool = {case.key: case for case in all_cases()}["pool-32"]
    assert "never happens in this loop" in pool.method


def test_every_publish_case_counts_delivery_on_the_broker() -> None:
    cases = {case.key: case for case in all_cases()}

    for key in ("publish", "confirm", "pipelined", "pipelined-raw"):
        assert "broker holds" in cases[key].method, key
        assert "x-max-length" not in cases[key].method, key


def test_the_asyncio_cases_are_compared_with_aio_pika() -> None:
    runners: dict[str, Runner] = {lib: never_run for lib in (BROKERPOOL, AIO_PIKA)}
    case = Case("aio-publish", "aio publish", "msg/s", True, runners, method="m")
    res = CaseResult(case, samples={BROKERPOOL: [90.0, 100.0], AIO_PIKA: [10.0, 10.0]})

    rows = block_rows(render_block(parse_results(render_markdown([res], {"date": "today"}))))

    assert rows["aio publish"] == ["95 msg/s", "—", "—", f"9.50x (9.00{DASH}10.00)"]
