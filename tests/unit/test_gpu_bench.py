"""bench.gpu_bench on the CPU at smoke sizes: every figure has a finite positive value, baseline
and ratio; the RESULTS.md writer replaces its own section and leaves every other byte alone;
bench/gpu_check.sh and bench/fetch_gpu_wheels.sh parse."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from bench import gpu_bench

ROOT = Path(__file__).resolve().parents[2]
ABOVE = "# Benchmark results\n\n| figure | value |\n|---|---|\n| submit | 1 req/s |\n\n"
BELOW_BEFORE = "## Model quality\n\nkept text\n\n"
BELOW_AFTER = "## Restoration\n\n| operation | ms |\n|---|---|\n| Telea | 19 |\n"


def section(stamp: str) -> str:
    return f"{gpu_bench.HEADING}\n\nMeasured {stamp}.\n\n| figure | value |\n|---|---|\n| x | 1 |\n"


def test_quick_cpu_run_writes_finite_figures(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text(ABOVE + gpu_bench.KEPT_MARKER + "\n" + BELOW_BEFORE)
    alone = tmp_path / "section.md"
    assert gpu_bench.main(["--device", "cpu", "--quick", "--threads", "1", "--out", str(out),
                           "--section-out", str(alone)]) == 0
    text = out.read_text()
    assert text.startswith(ABOVE + gpu_bench.KEPT_MARKER + "\n" + BELOW_BEFORE), "nothing before the section moved"
    written = alone.read_text()
    assert text.endswith(written) and written.startswith(gpu_bench.HEADING)
    rows = [line for line in written.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    assert len(rows) >= 10
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 6, row
        figure, value, baseline, ratio = cells[:4]
        numbers = [float(re.match(r"\**([\d,.]+)", cell).group(1).replace(",", ""))  # type: ignore[union-attr]
                   for cell in (value, baseline, ratio)]
        assert all(math.isfinite(n) and n > 0 for n in numbers), row
        assert cells[5] == "`python -m bench.gpu_bench --device cpu --quick --threads 1`", "no output paths shown"
    for part in ("GAN training", "restoration training", "generation 32 px", "generator forward",
                 "restoration inpaint", "restoration detect", "inpainter forward", "style transfer",
                 "restoration recipe 64 px", "creation recipe 32 px"):
        assert any(part in row for row in rows), part
    assert "Failed" not in written


def test_report_rows_are_finite_and_positive() -> None:
    args = gpu_bench.parse_args(["--device", "cpu", "--quick", "--only", "generation", "--only", "compile",
                                 "--no-compile"])
    report = gpu_bench.run(args, [])
    assert report.rows and not report.failed
    for row in report.rows:
        assert math.isfinite(row.ratio) and row.value > 0 and row.baseline > 0
    assert any("--no-compile" in reason for reason in report.skipped)


def test_section_writer_replaces_only_its_own_section() -> None:
    marker = gpu_bench.KEPT_MARKER
    original = ABOVE + marker + "\n" + BELOW_BEFORE + section("first") + "\n" + BELOW_AFTER
    replaced = gpu_bench.replace_section(original, section("second"))
    assert replaced == ABOVE + marker + "\n" + BELOW_BEFORE + section("second") + "\n" + BELOW_AFTER
    assert gpu_bench.replace_section(replaced, section("second")) == replaced, "idempotent"
    # a section at the very end, without a trailing newline
    at_end = ABOVE + marker + "\n" + BELOW_BEFORE + section("first").rstrip("\n")
    assert gpu_bench.replace_section(at_end, section("third")) == ABOVE + marker + "\n" + BELOW_BEFORE + section(
        "third")


def test_section_writer_appends_below_the_marker_and_keeps_every_byte() -> None:
    marker = gpu_bench.KEPT_MARKER
    original = ABOVE + marker + "\n" + BELOW_BEFORE + BELOW_AFTER
    appended = gpu_bench.replace_section(original, section("new"))
    assert appended == original + "\n" + section("new")
    # the same heading above the marker is run_all's business, not ours
    above_with_heading = section("not ours") + "\n" + marker + "\n"
    assert gpu_bench.replace_section(above_with_heading, section("new")).startswith(above_with_heading)
    # no marker at all: the marker goes in first, so bench.run_all keeps the section
    assert gpu_bench.replace_section("# Results\n", section("new")) == "# Results\n\n" + marker + "\n\n" + section(
        "new")


def test_marker_is_the_one_run_all_keeps_and_results_md_has_it() -> None:
    from bench.run_all import KEPT_MARKER

    assert gpu_bench.KEPT_MARKER == KEPT_MARKER
    assert KEPT_MARKER in (ROOT / "bench" / "RESULTS.md").read_text()


def test_from_section_writes_a_fetched_section(tmp_path: Path) -> None:
    out, fetched = tmp_path / "RESULTS.md", tmp_path / "gpu_section.md"
    out.write_text(ABOVE + gpu_bench.KEPT_MARKER + "\n" + BELOW_BEFORE)
    fetched.write_text(section("on the GPU"))
    assert gpu_bench.main(["--from-section", str(fetched), "--out", str(out)]) == 0
    assert out.read_text() == ABOVE + gpu_bench.KEPT_MARKER + "\n" + BELOW_BEFORE + section("on the GPU")
    fetched.write_text("# not a section\n")
    with pytest.raises(SystemExit):
        gpu_bench.main(["--from-section", str(fetched), "--out", str(out)])


@pytest.mark.parametrize("script", ["bench/gpu_check.sh", "bench/fetch_gpu_wheels.sh"])
def test_shell_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)
