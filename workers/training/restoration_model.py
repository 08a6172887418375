"""How the service describes a restoration model it made, shared by training jobs
(``workers.pipelines.restoration_training``) and the shipped model's command
(``workers.training.default_models``): its model card and its weights file."""

from __future__ import annotations

import time
from typing import Any

from torch import Tensor

from shared.job_params import RestorationTrainingParams
from workers.models.restoration import RestorationConfig
from workers.training.restoration import RestorationTrainConfig, RestorationTrainResult
from workers.training.restoration_eval import learned_operations

ARCHITECTURE = "gated-conv-unet-inpainter+unet-detector+affine-fade-corrector"


def restoration_card(params: RestorationTrainingParams, model_config: RestorationConfig,
                     train_config: RestorationTrainConfig, dataset: dict[str, Any], photos: dict[str, Any],
                     metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """The model card of a restoration model: its recipe, its data's lineage, its measures
    against the classical methods, and the operations jobs run with it."""
    return {
        "task": "restoration",
        "architecture": ARCHITECTURE,
        "restoration_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "resolution": params.resolution,
        "labels": [],
        "dataset": dataset,
        "held_out_photos": photos,
        "training": training,
        "metrics": metrics,
        "learned_operations": learned_operations(metrics),
        "created_at": time.time(),
    }


def restoration_weights(result: RestorationTrainResult) -> dict[str, Tensor]:
    """The three networks' weights in one file, each under its own prefix."""
    return {**{f"inpainter.{k}": v for k, v in result.inpainter_state.items()},
            **{f"detector.{k}": v for k, v in result.detector_state.items()},
            **{f"fade_corrector.{k}": v for k, v in result.fade_state.items()}}
