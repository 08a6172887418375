"""The learned 2x upscaler: what it computes before training, how larger factors are reached, and
that a short training already beats Lanczos on held-out paintings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from workers.data.procedural import make_dataset
from workers.models.upscaler import Upscaler2x, UpscalerConfig, doublings_for, upscale_images
from workers.training.upscaler import TrainConfig, edge_sharpness, evaluate_upscaler, psnr, train_upscaler


def test_an_untrained_upscaler_is_bicubic_interpolation() -> None:
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out = Upscaler2x(UpscalerConfig(channels=8, blocks=1))(x)
    assert torch.allclose(out, F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))


@pytest.mark.parametrize("side,target,passes", [(64, 128, 1), (64, 256, 2), (64, 1000, 4), (128, 128, 0)])
def test_doublings_reach_at_least_the_target(side: int, target: int, passes: int) -> None:
    assert doublings_for(side, target) == passes


def test_upscale_images_lands_on_the_exact_side_asked_for() -> None:
    net = Upscaler2x(UpscalerConfig(channels=8, blocks=1))
    images = [Image.fromarray(im) for im in make_dataset(1, 32, seed=3)[0][:3]]
    out = upscale_images(net, images, 100)
    assert [im.size for im in out] == [(100, 100)] * 3
    assert net.training  # the module's mode is left as it was found
    with pytest.raises(ValueError):
        upscale_images(net, images, 4096)


def test_edge_sharpness_tells_blur_from_the_truth() -> None:
    truth = make_dataset(1, 128, seed=4)[0][0]
    blurred = np.asarray(Image.fromarray(truth).resize((32, 32)).resize((128, 128), Image.Resampling.BILINEAR))
    assert edge_sharpness(truth, truth) == pytest.approx(1.0)
    assert edge_sharpness(blurred, truth) < 0.7
    assert psnr(truth, truth) > 90


def test_a_short_training_improves_on_where_it_starts_on_held_out_paintings() -> None:
    """Where it starts is bicubic interpolation; 300 short steps already fill in detail. (The shipped
    upscaler's margin over Lanczos is asserted on its own weights in test_default_models.)"""
    held = {"paintings": make_dataset(2, 96, seed=99)[0]}
    config = TrainConfig(steps=300, batch_size=8, crop=32, side=96, per_style=4)
    start = evaluate_upscaler(train_upscaler(TrainConfig(**{**config.to_dict(), "steps": 0})), held)["paintings"]
    trained = evaluate_upscaler(train_upscaler(config), held)["paintings"]
    assert trained["psnr_learned"] > start["psnr_learned"] + 0.4, (start, trained)
