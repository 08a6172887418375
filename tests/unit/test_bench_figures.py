"""The bench's report: every figure's ratio and goal verdict, and the kept part of RESULTS.md."""

from __future__ import annotations

from bench.common import Figure
from bench.run_all import KEPT_MARKER, results_markdown


def figure(value: float, baseline: float, goal: str = "", higher: bool = False) -> Figure:
    return Figure("x", value, baseline, "ms", "base", higher_is_better=higher, command="python -m bench.x", goal=goal)


def test_ratio_and_goal_verdicts() -> None:
    assert figure(130, 100).ratio == 1.3
    assert figure(130, 100, "<= 1.3").goal_verdict() == "<= 1.3 (met)"
    assert figure(131, 100, "<= 1.3").goal_verdict() == "<= 1.3 (not met)"
    assert figure(69, 100, ">= 0.7", higher=True).goal_verdict() == ">= 0.7 (not met)"
    assert figure(70, 100, ">= 0.7", higher=True).goal_verdict() == ">= 0.7 (met)"
    assert figure(1, 1).goal_verdict() == "-"
    assert figure(1, 1, ">= 80 %").goal_verdict() == ">= 80 %"  # not a ratio goal: shown as written


def test_every_row_has_value_baseline_ratio_and_the_kept_part_is_separate() -> None:
    markdown = results_markdown([figure(150, 100, "<= 1.3")], failed=["bench.y --side 1024"])
    row = next(line for line in markdown.splitlines() if line.startswith("| x |"))
    assert "| 150.0 ms |" in row and "100.0 ms (base)" in row and "**1.50**" in row and "<= 1.3 (not met)" in row
    assert "bench.y --side 1024" in markdown
    assert KEPT_MARKER not in markdown  # main() appends the marker and the kept section after it
