"""Run every benchmark, print one table, and rewrite ``bench/RESULTS.md``.

    python -m bench.run_all        (``make bench``)

Each benchmark starts its own stack and runs with its default arguments, exactly as its
module does alone (``python -m bench.api_submit`` and so on). A benchmark that fails is
reported and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    analysis,
    api_submit,
    creation,
    finalize_throughput,
    gan_training,
    png_encode,
    provenance,
    restoration,
    round_trip,
    style_transfer,
    worker_footprint,
)
from bench.common import Figure, machine, print_figures

RESULTS = Path(__file__).with_name("RESULTS.md")
# Everything below this line in RESULTS.md is measured by other commands (quality runs, single
# benchmarks with other arguments) and is kept as it is when this script rewrites the file.
KEPT_MARKER = "<!-- kept by bench.run_all: figures measured by the commands named with them -->"
COMMAND = "python -m bench.run_all"
# (module, its ``run``, the arguments it gets): the same as running the module alone with them.
BENCHES: list[tuple[str, Callable[[list[str]], list[Figure]], list[str]]] = [
    ("bench.api_submit", api_submit.run, []),
    ("bench.round_trip", round_trip.run, []),
    ("bench.style_transfer", style_transfer.run, []),
    ("bench.style_transfer", style_transfer.run, ["--side", "1024", "--runs", "3"]),
    ("bench.creation", creation.run, []),
    ("bench.finalize_throughput", finalize_throughput.run, []),
    ("bench.gan_training", gan_training.run, []),
    ("bench.png_encode", png_encode.run, []),
    ("bench.provenance", provenance.run, []),
    ("bench.restoration", restoration.run, []),
    ("bench.restoration", restoration.run, ["--side", "1024", "--runs", "2"]),
    ("bench.worker_footprint", worker_footprint.run, []),
    ("bench.analysis", analysis.run, []),
]


def run_benches() -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    failed: list[str] = []
    for name, run, argv in BENCHES:
        label = " ".join([name, *argv])
        print(f"running {label} ...", flush=True)
        started = time.monotonic()
        try:
            figures += run(argv)
        except Exception:
            traceback.print_exc()
            failed.append(label)
        print(f"  {label}: {time.monotonic() - started:.0f} s", flush=True)
    return figures, failed


def fmt(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(figures: list[Figure]) -> list[str]:
    """Markdown rows: figure, value, baseline, ratio, goal, machine, date, command."""
    rows = ["| figure | value | baseline | ratio (value / baseline) | goal | machine | date | command |",
            "|---|---|---|---|---|---|---|---|"]
    for f in figures:
        better = "higher is better" if f.higher_is_better else "lower is better"
        rows.append(f"| {f.name} | {fmt(f.value)} {f.unit} | {fmt(f.baseline)} {f.unit} ({f.baseline_name}) | "
                    f"**{f.ratio:.2f}** ({better}) | {f.goal_verdict()} | {f.machine} | {f.measured_at} | "
                    f"`{COMMAND}` (alone: `{f.command}`) |")
    return rows


def console_table(figures: list[Figure]) -> str:
    header = ("figure", "value", "baseline", "ratio")
    rows = [header] + [(f.name, f"{fmt(f.value)} {f.unit}", f"{fmt(f.baseline)} {f.unit}", f"{f.ratio:.2f}")
                       for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     for row in rows)


def what_it_measures(module: str) -> str:
    """The paragraph of the module's docstring that says what is measured against what."""
    doc = sys.modules[module].__doc__ or ""
    paragraphs = doc.strip().split("\n\n")
    return " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else paragraphs[0]


def results_markdown(figures: list[Figure], failed: list[str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{COMMAND}` (`make bench`); every run rewrites this file. Each figure is",
        "compared with a baseline measured in the same run on the same machine, and the ratio",
        "is value / baseline: for throughput higher is better, for times lower is better (the",
        "ratio then says how many times the baseline's time it takes). Absolute numbers depend",
        "on the machine and on whatever else it runs; only the ratios are meant to be compared.",
        "",
        *table(figures),
        "",
        "## Notes per figure",
        "",
        *[f"- **{f.name}**: {f.note}" for f in figures if f.note],
        "",
        "## What is compared",
        "",
        *[f"- `{name}`: {what_it_measures(name)}" for name in dict.fromkeys(name for name, _, _ in BENCHES)],
    ]
    if failed:
        lines += ["", "## Failed in this run", "", *[f"- `{name}` (see the run's output)" for name in failed]]
    return "\n".join(lines) + "\n"


def main() -> int:
    print(f"machine: {machine()}")
    figures, failed = run_benches()
    print()
    print(console_table(figures))
    print()
    print_figures(figures)
    kept = RESULTS.read_text().partition(KEPT_MARKER)[2] if RESULTS.exists() else ""
    RESULTS.write_text(results_markdown(figures, failed) + "\n" + KEPT_MARKER + kept)
    print(f"\nwrote {RESULTS}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
