"""The ``training`` job kind: its ``params.target`` picks the trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from shared.job_params import TrainingParams
from workers.job_context import CancelCheck, JobContext, ProgressFn
from workers.pipelines.registry import PipelineResult, register_pipeline
from workers.pipelines.restoration_training import train_restoration_model
from workers.pipelines.training import train_gan_model

Trainer = Callable[[Any, ProgressFn, CancelCheck, JobContext], PipelineResult]
# One per value of shared.job_params.TRAINING_TARGETS.
TRAINERS: dict[str, Trainer] = {"gan": train_gan_model, "restoration": train_restoration_model}


@register_pipeline("training")
def train(
    inputs: dict[str, Image.Image],
    params: TrainingParams,
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    return TRAINERS[params.target](params, progress, check_cancel, ctx)
