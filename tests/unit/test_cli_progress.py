"""Job progress in a log: one line per stage or per tenth, never carriage-return frames. No network."""

from __future__ import annotations

import io

from client.cli import JobProgressBar, JobProgressLines, progress_for


def test_thousands_of_updates_make_a_line_per_stage_or_tenth() -> None:
    out = io.StringIO()
    progress = JobProgressLines(out)
    progress({"status": "queued", "progress": {}})
    for step in range(1, 5001):
        progress.show_event({"event": "progress", "data": {"status": "running", "stage": "training",
                                                          "fraction": 0.85 * step / 5000, "message": f"step {step}"}})
    progress.show_event({"event": "progress", "data": {"status": "running", "stage": "evaluating", "fraction": 0.9}})
    progress.show_event({"event": "end", "data": {"status": "succeeded", "progress": {"stage": "registered",
                                                                                      "fraction": 1.0}}})
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "queued:" and lines[-2:] == ["evaluating:  90%", "registered: 100%"]
    training = [line for line in lines if line.startswith("training:")]
    assert [line.split()[1] for line in training] == ["0%", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%"]
    assert len(lines) == 12


def test_the_stream_break_is_noted_once() -> None:
    out = io.StringIO()
    progress = JobProgressLines(out)
    for fraction in (0.1, 0.2):
        progress.show_event({"event": "poll", "data": {"status": "running", "stage": "styling", "fraction": fraction}})
    assert out.getvalue().count("polling instead") == 1


def test_a_terminal_gets_a_bar_and_a_pipe_gets_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_for(io.StringIO()), JobProgressLines)
    bar = progress_for(Terminal())
    assert isinstance(bar, JobProgressBar)
    bar.close()
