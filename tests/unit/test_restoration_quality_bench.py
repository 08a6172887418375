"""bench.restoration_quality: a short run prints one row per held-out set with every method."""

from __future__ import annotations

import re

import pytest

from bench import restoration_quality


def test_a_short_run_prints_every_method_for_paintings_and_photos(capsys: pytest.CaptureFixture[str]) -> None:
    assert restoration_quality.main(["--steps", "2", "--per-style", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| images |"))
    assert all(method in header for method in restoration_quality.METHODS)
    rows = {name: next(line for line in out.splitlines() if line.startswith(f"| {name}"))
            for name in ("held-out paintings", "held-out photos")}
    for row in rows.values():
        cells = row.strip("|").split("|")
        assert len(cells) == len(restoration_quality.METHODS) + 3
        assert re.search(r"\| (telea|navier_stokes|biharmonic|pull_push) \| \*\*[+-]\d+\.\d\d dB\*\* \|$", row)
    assert "held-out photos (16)" in rows["held-out photos"]
    assert "python -m bench.restoration_quality --steps 2" in out
    for name in ("held-out paintings", "held-out photos"):
        assert re.search(rf"^\| {name} \(\d+\) \| [\d.]+ dB \| [\d.]+ dB \| \*\*[\d.]+ dB\*\* \| [+-][\d.]+ dB "
                         r"\| \d+% / \d+% \| [\d.]+ / [\d.]+ dB \|$", out, re.MULTILINE), ("defade", name)
        assert re.search(rf"^\| denoise.* \| {name} \(\d+\) \| [\d.]+ dB \| \*\*[\d.]+ dB\*\* \|$",
                         out, re.MULTILINE), ("denoise", name)
