"""Render benchmark results as Markdown, reStructuredText and a PNG chart."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.harness import AIO_PIKA, KOMBU, LIBRARIES, RAW, CaseResult, Spread

__all__ = ["DASH", "METHOD", "render_markdown", "render_rst", "write_chart", "write_reports"]

#: Between the lowest and the highest figure of a range (an en dash).
DASH = "\N{EN DASH}"

METHOD = (
    "Every case runs brokerpool, kombu and raw py-amqp (and pika where it fits) in the "
    "same process and the same run, against the same broker. Each library's set-up is "
    "untimed; then the libraries are measured in turn, round after round, with the order "
    "rotated every round so that machine drift hits all of them alike. A warm-up call "
    "precedes the rounds unless the case says otherwise. Each figure is the median over the "
    "rounds, followed by the lowest and highest round in brackets. Ratios are brokerpool's "
    "median divided by the other library's median, followed by the lowest and highest "
    "per-round ratio (round i of brokerpool divided by round i of the other library, "
    "measured next to each other): a wide bracket means one run's figure says little. For "
    "throughput (higher is better) a ratio above 1 favours brokerpool, for latency, time "
    "and memory (lower is better) a ratio below 1 does. Absolute figures drift between "
    "runs on a shared 2-core machine; compare ratios."
)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("msg/s", "ops/s"):
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{digits}f}"


def _fmt_spread(spread: Spread | None, unit: str) -> str:
    """``median (low-high)`` with an en dash; no bracket when every round gave the same."""
    if spread is None:
        return "—"
    middle = _fmt(spread.middle, unit)
    low, high = _fmt(spread.low, unit), _fmt(spread.high, unit)
    return middle if low == high else f"{middle} ({low}{DASH}{high})"


def _ratio(spread: Spread | None) -> str:
    """``1.95x (1.80-2.10)`` with an en dash: the ratio of medians and the per-round range."""
    if spread is None:
        return "—"
    middle = f"{spread.middle:.2f}x"
    low, high = f"{spread.low:.2f}", f"{spread.high:.2f}"
    return middle if low == high else f"{middle} ({low}{DASH}{high})"


def _cell(res: CaseResult, lib: str) -> str:
    if lib not in res.case.runners:
        return "n/a"
    if res.error is not None:
        return "not run"
    if lib in res.skipped:
        return "FAILED" if res.skipped[lib].startswith("failed:") else "skipped"
    return _fmt_spread(res.spread(lib), res.case.unit)


def _rows(results: Sequence[CaseResult]) -> tuple[list[str], list[list[str]]]:
    header = ["Case", "Unit", "Better", *LIBRARIES, "bp ÷ kombu", "bp ÷ py-amqp", "Target"]
    header += [AIO_PIKA, "bp ÷ aio-pika"]  # the asyncio cases' comparison
    rows = []
    for res in results:
        case = res.case
        cells = [case.title, case.unit, "higher" if case.higher_is_better else "lower"]
        cells += [_cell(res, lib) for lib in LIBRARIES]
        cells += [_ratio(res.ratio_spread(KOMBU)), _ratio(res.ratio_spread(RAW)), case.target]
        cells += [_cell(res, AIO_PIKA), _ratio(res.ratio_spread(AIO_PIKA))]
        rows.append(cells)
    return header, rows


def _notes(results: Sequence[CaseResult]) -> list[str]:
    notes = []
    for res in results:
        text = f"**{res.case.title}** ({res.case.key}): {res.case.method}"
        rounds = {len(v) for v in res.samples.values()}
        if rounds:
            text += f" Rounds: {max(rounds)}; case took {res.seconds:.0f} s."
        if res.error is not None:
            text += f" NOT RUN: {res.error}."
        for lib, reason in sorted(res.skipped.items()):
            verb = "" if reason.startswith("failed:") else "skipped: "
            text += f" {lib} {verb}{reason}."
        notes.append(text)
    return notes


def render_markdown(results: Sequence[CaseResult], facts: dict[str, str]) -> str:
    """The whole ``results.md``."""
    header, rows = _rows(results)
    out = ["# brokerpool benchmark results", ""]
    out += [f"- **{k}**: {v}" for k, v in facts.items()]
    out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    out += ["", "## Method", "", METHOD, "", "## Cases", ""]
    out += [f"- {note}" for note in _notes(results)]
    return "\n".join(out) + "\n"


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def render_rst(results: Sequence[CaseResult], facts: dict[str, str]) -> str:
    """A section-less reST fragment (for ``.. include::`` in the docs)."""
    header, rows = _rows(results)
    out = [".. This file is generated by `python -m bench`; do not edit.", ""]
    out += [f"- **{_rst_escape(k)}**: {_rst_escape(v)}" for k, v in facts.items()]
    out += [
        "",
        f".. list-table:: Medians (lowest{DASH}highest round) and ratios (bp = brokerpool)",
        "   :header-rows: 1",
        "",
    ]
    for row in [header, *rows]:
        out.append(f"   * - {_rst_escape(row[0])}")
        out += [f"     - {_rst_escape(cell) or '..'}" for cell in row[1:]]
    out += ["", _rst_escape(METHOD), ""]
    for note in _notes(results):
        note = note.replace("**", "\x00")
        out.append("- " + _rst_escape(note).replace("\x00", "**"))
    return "\n".join(out) + "\n"


def write_chart(results: Sequence[CaseResult], path: Path) -> None:
    """Bar charts of how many times better brokerpool is than kombu and than raw py-amqp.

    Bars start at 1 (parity) and grow right when brokerpool is better, left
    when it is worse, on a log scale so that 2x better and 2x worse look alike.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [res.case.title for res in results]
    panels = [(other, [res.advantage(other) for res in results]) for other in (KOMBU, RAW)]
    known = [v for _, values in panels for v in values if v is not None]
    low = min([0.5, *known]) / 1.4
    high = max([2.0, *known]) * 1.6
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if low <= t <= high]
    height = max(3.0, 0.42 * len(results) + 1.6)
    fig, axes = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    for ax, (other, values) in zip(axes, panels, strict=True):
        for y, v in enumerate(values):
            if v is None:
                ax.text(1.0, y, " n/a", va="center", fontsize=7, color="grey")
                continue
            ax.barh(y, v - 1.0, left=1.0, color="#3a7" if v >= 1 else "#c54", height=0.7)
            ax.text(
                v,
                y,
                f" {v:.2f}x ",
                va="center",
                ha="left" if v >= 1 else "right",
                fontsize=7,
            )
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_title(f"brokerpool vs {other}: times better (> 1 favours brokerpool)", fontsize=9)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)  # first case on top
    fig.suptitle(
        "throughput: brokerpool / other; latency, time, memory: other / brokerpool",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(
    results: Sequence[CaseResult], facts: dict[str, str], out_dir: Path
) -> list[Path]:
    """Write ``results.md``, ``results.rst`` and (with matplotlib) ``results.png`` into ``out_dir``.

    Returns the paths written; the chart is left out, with a note on stderr,
    when matplotlib is not installed (it comes with the ``bench`` extra).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    md, rst, png = out_dir / "results.md", out_dir / "results.rst", out_dir / "results.png"
    md.write_text(render_markdown(results, facts), encoding="utf-8")
    rst.write_text(render_rst(results, facts), encoding="utf-8")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.stderr.write("[bench] matplotlib is not installed: results.png not written\n")
        return [md, rst]
    write_chart(results, png)
    return [md, rst, png]
