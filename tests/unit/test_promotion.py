"""The promotion gate's decision, the content-decided held-out split, and fine-tuning starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.schedules import parse_cron
from workers.data.datasets import split_held_out
from workers.training.promotion import Metric, decide, gate

SWD = Metric("swd", higher_is_better=False)
PSNR = Metric("pooled_hole_psnr", higher_is_better=True)
FD = Metric("frechet_distance", higher_is_better=False)


def test_a_challenger_better_on_every_seed_by_the_margin_is_promoted() -> None:
    decision = decide(SWD, [80.0, 82.0, 79.0], [100.0, 98.0, 101.0], margin=0.05, incumbent_version=3)
    assert decision.promote and decision.incumbent_version == 3
    assert decision.relative_improvement == pytest.approx((99.6667 - 80.3333) / 99.6667, abs=1e-3)
    assert "better on every seed" in decision.reason


def test_higher_is_better_metrics_compare_the_other_way() -> None:
    assert decide(PSNR, [16.0, 16.2], [15.0, 15.1], margin=0.02, incumbent_version=1).promote
    assert not decide(PSNR, [15.0, 15.1], [16.0, 16.2], margin=0.02, incumbent_version=1).promote


def test_a_win_on_the_mean_but_not_on_every_seed_is_not_enough() -> None:
    decision = decide(SWD, [50.0, 105.0, 60.0], [100.0, 100.0, 100.0], margin=0.05, incumbent_version=1)
    assert not decision.promote and "2/3" in decision.reason


def test_a_win_smaller_than_the_margin_is_not_enough() -> None:
    decision = decide(SWD, [99.0, 99.0], [100.0, 100.0], margin=0.05, incumbent_version=1)
    assert not decision.promote and "margin" in decision.reason
    assert decide(SWD, [99.0, 99.0], [100.0, 100.0], margin=0.0, incumbent_version=1).promote


def test_equal_scores_never_promote() -> None:
    assert not decide(PSNR, [15.0, 15.0], [15.0, 15.0], margin=0.0, incumbent_version=1).promote


def test_gate_scores_both_models_with_the_same_seeds() -> None:
    calls: list[tuple[str, int]] = []

    def score(model: str, seed: int) -> float:
        calls.append((model, seed))
        return {"new": 10.0, "old": 20.0}[model] + seed

    decision = gate(SWD, score, "new", "old", incumbent_version=2, margin=0.1, seeds=(0, 1, 2))
    assert sorted(calls) == sorted([(m, s) for m in ("new", "old") for s in (0, 1, 2)])
    assert decision.promote and decision.to_dict()["per_seed"][1] == {"challenger": 11.0, "incumbent": 21.0}


STYLE_FD = Metric("frechet_distance_style", higher_is_better=False)


def test_a_guard_vetoes_a_challenger_that_wins_on_the_primary_metric_but_loses_clearly_on_the_guard() -> None:
    """The case the guard is for: a collapsed generator closer in ImageNet features (4.29x the floor
    against 5.05x) but far worse in the style space (8.24x against 5.27x)."""
    primary = {"new": 136.0, "old": 160.0}
    style = {"new": 3.3, "old": 2.1}
    decision = gate(FD, lambda m, s: primary[m] + s, "new", "old", incumbent_version=1, margin=0.02,
                    guard=(STYLE_FD, lambda m, s: style[m] + 0.01 * s))
    assert not decision.promote
    assert "guard frechet_distance_style" in decision.reason and "better on every seed" in decision.reason
    assert decision.guard is not None and decision.guard["holds"] is False
    assert decision.to_dict()["guard"]["challenger"] == pytest.approx(3.31)


def test_a_guard_within_its_tolerance_lets_the_primary_metric_decide() -> None:
    primary = {"new": 136.0, "old": 160.0}
    style = {"new": 2.3, "old": 2.1}  # 9.5% worse: within the tolerance (seed-to-seed noise)
    decision = gate(FD, lambda m, s: primary[m], "new", "old", incumbent_version=1, margin=0.02,
                    guard=(STYLE_FD, lambda m, s: style[m]))
    assert decision.promote and decision.guard is not None and decision.guard["holds"]


def test_the_guard_is_not_scored_when_the_primary_metric_already_refuses() -> None:
    scored: list[str] = []

    def style(model: str, seed: int) -> float:
        scored.append(model)
        return 1.0

    decision = gate(FD, lambda m, s: {"new": 170.0, "old": 160.0}[m], "new", "old", incumbent_version=1,
                    margin=0.02, guard=(STYLE_FD, style))
    assert not decision.promote and decision.guard is None and scored == []


def test_decide_refuses_unpaired_scores() -> None:
    with pytest.raises(ValueError):
        decide(SWD, [1.0], [1.0, 2.0], margin=0, incumbent_version=1)


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)


def test_the_held_out_split_depends_on_each_image_alone() -> None:
    first = images(200, 0)
    labels = np.repeat([0, 1], 100)
    train, held = split_held_out(first, labels, 0.2)
    assert sorted([*train, *held]) == list(range(200))
    assert 20 <= len(held) <= 60
    # The dataset grows (and is reordered): every image held out before is held out still.
    grown = np.concatenate([images(50, 1), first[::-1]])
    grown_labels = np.concatenate([np.zeros(50, dtype=np.int64), labels[::-1]])
    _, grown_held = split_held_out(grown, grown_labels, 0.2)
    before = {first[i].tobytes() for i in held}
    after = {grown[i].tobytes() for i in grown_held}
    assert before <= after


def test_every_label_with_two_images_keeps_one_held_out() -> None:
    few = images(6, 2)
    labels = np.array([0, 0, 1, 1, 2, 2])
    train, held = split_held_out(few, labels, 0.0)
    assert sorted(labels[held].tolist()) == [0, 1, 2]
    assert sorted(labels[train].tolist()) == [0, 1, 2]


def test_cron_expressions_have_five_valid_fields() -> None:
    assert parse_cron("*/15 3 * * mon-fri")
    for bad in ("* * * *", "61 * * * *", "* 25 * * *", "every day at noon", ""):
        with pytest.raises(ValueError):
            parse_cron(bad)


def test_fine_tuning_starts_a_gan_from_given_generator_weights() -> None:
    from tests.unit.test_gan import QUICK, TINY, noise_data
    from workers.models.gan import Generator
    from workers.training.gan import TrainConfig, train_gan

    start = Generator(TINY).state_dict()
    # no standing statistics: they would re-measure the batch-norm buffers this test compares
    zero_steps = TrainConfig(**{**QUICK.to_dict(), "steps": 0, "standing_batches": 0})
    result = train_gan(*noise_data(), TINY, zero_steps, init_weights=start)
    assert all(torch.equal(result.g_ema_state[k], v) for k, v in start.items())
    scratch = train_gan(*noise_data(), TINY, zero_steps)
    assert not all(torch.equal(scratch.g_ema_state[k], v) for k, v in start.items())
