"""The test-only fault injection's parser and its stall (workers.faults)."""

from __future__ import annotations

import time

import pytest

from workers import faults


def test_faults_parse_with_their_arguments() -> None:
    assert faults.parse("crash:restoration, oom:creation:2,stall:style_transfer:1.5,stall-store:creation:2") == (
        faults.Fault("crash", "restoration"), faults.Fault("oom", "creation", 2.0),
        faults.Fault("stall", "style_transfer", 1.5), faults.Fault("stall-store", "creation", 2.0))
    assert faults.parse("") == ()


@pytest.mark.parametrize("spec", ["nap:creation", "stall:creation", "stall-store:creation", "oom:creation:two",
                                  "crash"])
def test_a_fault_that_does_not_parse_is_refused_by_name(spec: str) -> None:
    with pytest.raises(ValueError, match="ARTFORGE_FAULT_INJECTION"):
        faults.parse(spec)


def test_a_stall_shows_its_stage_then_waits_its_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "active", lambda: faults.parse("stall:style_transfer:0.3"))
    shown: list[tuple[float, str, str]] = []
    started = time.monotonic()
    faults.before_pipeline("restoration", lambda *p: shown.append(p))
    assert shown == [] and time.monotonic() - started < 0.2  # another kind: no stall
    faults.before_pipeline("style_transfer", lambda *p: shown.append(p))
    assert time.monotonic() - started >= 0.3
    assert [stage for _, stage, _ in shown] == ["stalled"]


def test_a_store_stall_shows_its_own_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "active", lambda: faults.parse("stall-store:style_transfer:0.1"))
    shown: list[tuple[float, str, str]] = []
    faults.before_pipeline("style_transfer", lambda *p: shown.append(p))
    assert shown == []  # the pipeline's start is not the store
    faults.before_store("style_transfer", lambda *p: shown.append(p))
    assert [(fraction, stage) for fraction, stage, _ in shown] == [(0.9, "stalled storing")]
