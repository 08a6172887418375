"""The loss log a training job lists as an artifact (``losses.json``, drawn by the gallery),
written by TrainingRun for both trainers, on the CPU with tiny networks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from workers.data.procedural import make_dataset
from workers.job_context import JobContext, MemoryWorkspace
from workers.models.gan import GanConfig
from workers.models.restoration import RestorationConfig
from workers.pipelines.training import CHECKPOINT, LOSS_LOG, LOSS_LOG_POINTS, TrainingRun
from workers.training.checkpoint import state_to_bytes
from workers.training.gan import TrainConfig, train_gan
from workers.training.restoration import RestorationTrainConfig, train_restoration


class Canceled(Exception):
    pass


def quiet(fraction: float, stage: str, message: str) -> None:
    pass


def loss_log(ctx: JobContext) -> list[dict[str, Any]]:
    workspace = ctx.workspace
    assert isinstance(workspace, MemoryWorkspace)
    data, content_type, listed = workspace.files[LOSS_LOG]
    assert (content_type, listed) == ("application/json", True)
    return list(json.loads(data))


def cancel_before_step(step: int) -> Any:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == step:
            raise Canceled

    return check


def test_gan_training_lists_a_loss_log_with_every_step_of_a_short_run() -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), np.arange(12) % 2
    ctx = JobContext.local()
    run = TrainingRun(ctx, quiet)
    config = GanConfig(n_classes=2, resolution=32, ngf=4, ndf=4)
    train_gan(images, labels, rng.random((12, 3), dtype=np.float32), config,
              TrainConfig(steps=5, batch_size=4, checkpoint_every=2, sample_every=100, seed=1),
              on_progress=run.on_progress, save_checkpoint=run.save_checkpoint, save_samples=run.save_samples)
    log = loss_log(ctx)
    assert [point["step"] for point in log] == [1, 2, 3, 4, 5]
    assert all(set(point) == {"step", "d", "g", "attributes", "diversity", "d_real", "d_fake"} for point in log)
    assert all(isinstance(point["d"], float) for point in log)


def test_restoration_training_resumes_its_loss_log_at_the_checkpoint() -> None:
    """Canceled before step 4 (checkpointed at 3, the log with it), then run again: the log
    holds every step once, in order."""
    art = list(make_dataset(1, 48, seed=2)[0])
    tiny = RestorationConfig(width=8, depth=2, dilations=(2,), detector_width=4, detector_depth=2)
    config = RestorationTrainConfig(steps=6, batch_size=2, patch=32, checkpoint_every=100, sample_every=100, seed=3)
    ctx = JobContext.local()
    run = TrainingRun(ctx, quiet)
    with pytest.raises(Canceled):
        train_restoration(art, tiny, config, check_cancel=cancel_before_step(4), on_progress=run.on_progress,
                          save_checkpoint=run.save_checkpoint, save_samples=run.save_samples)
    assert [point["step"] for point in loss_log(ctx)] == [1, 2, 3]

    again = TrainingRun(ctx, quiet)
    assert again.first_step == 3
    train_restoration(art, tiny, config, resume=again.resume, on_progress=again.on_progress,
                      save_checkpoint=again.save_checkpoint, save_samples=again.save_samples)
    log = loss_log(ctx)
    assert [point["step"] for point in log] == [1, 2, 3, 4, 5, 6]
    assert {"l1", "pyramid", "bce", "dice"} <= set(log[-1])


def test_a_long_run_logs_a_bounded_sample_with_its_last_step_and_no_nan() -> None:
    ctx = JobContext.local()
    run = TrainingRun(ctx, quiet)
    total = LOSS_LOG_POINTS * 7 + 3
    for step in range(1, total + 1):
        run.on_progress(step, total, {"d": float("nan") if step == total else 0.5})
    run.save_loss_log()
    log = loss_log(ctx)
    assert LOSS_LOG_POINTS <= len(log) <= LOSS_LOG_POINTS + 1
    assert log[-1] == {"step": total, "d": None}


def test_points_after_the_checkpoint_are_dropped_on_resume() -> None:
    ctx = JobContext.local()
    ctx.workspace.save(LOSS_LOG, json.dumps([{"step": s, "d": 1.0} for s in (1, 2, 3, 4)]).encode(),
                       "application/json")
    ctx.workspace.save(CHECKPOINT, state_to_bytes({"step": 2}), "application/octet-stream", listed=False)
    assert [point["step"] for point in TrainingRun(ctx, quiet).loss_log] == [1, 2]
