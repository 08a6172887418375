"""A perceptual distance between two images in EfficientNet-Lite0's ImageNet feature space
(``workers.models.efficientnet_lite``, the network the Fréchet distance uses): LPIPS without its
learned channel weights (Zhang et al. 2018, the "baseline" variant of their Table 5).

At the ends of four stages (1/4 to 1/32 of the input side) every position's feature vector is
scaled to unit length; the distance is the squared difference of the two images' unit vectors,
averaged over positions and summed over the stages. 0 for identical images, larger as their
structure and texture part; blur, smears and pasted-in texture count, where PSNR counts only
pixel error. Images go in at their own size (no resize): restoration scores 128 px tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workers.models.efficientnet_lite import EfficientNetLite0, shared_pretrained

STAGES = ("s4", "s8", "s16", "s32")
# Pairs a forward (16 images): larger batches outgrow the CPU's caches (72 pairs at 128 px: 0.76 s
# in batches of 32, 0.47 s in batches of 8, the same distances).
BATCH = 8


def _unit(features: torch.Tensor) -> torch.Tensor:
    return features / (features.norm(dim=1, keepdim=True) + 1e-10)


def feature_distance(network: EfficientNetLite0, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N]: the distance between images ``a[i]`` and ``b[i]`` ([N, 3, H, W] in [-1, 1]), through
    ``network`` (a frozen pretrained copy). Differentiable: restoration training uses it as a loss."""
    maps = network.stages(torch.cat([a, b]).contiguous(memory_format=torch.channels_last), last=STAGES[-1])
    total = a.new_zeros(len(a))
    for stage in STAGES:
        fa, fb = _unit(maps[stage][:len(a)]), _unit(maps[stage][len(a):])
        total = total + ((fa - fb) ** 2).sum(dim=1).mean(dim=(1, 2))
    return total


@torch.inference_mode()
def _batch_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.concatenate([a, b])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return feature_distance(shared_pretrained(), x[:len(a)], x[len(a):]).double().numpy()


def perceptual_distances(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """float64 [N]: the distance between ``a[i]`` and ``b[i]`` (uint8 [H, W, 3], each pair of one
    size, at least 32 px a side)."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} images against {len(b)}")
    out = np.zeros(len(a))
    for start in range(0, len(a), BATCH):
        pairs = list(zip(a[start:start + BATCH], b[start:start + BATCH], strict=True))
        for first, second in pairs:
            if first.shape != second.shape or first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
                raise ValueError(f"expected pairs of uint8 [H, W, 3] images of one size, got {first.shape} "
                                 f"{first.dtype} and {second.shape} {second.dtype}")
        if len({first.shape for first, _ in pairs}) == 1:
            out[start:start + len(pairs)] = _batch_distances(np.stack([p[0] for p in pairs]),
                                                             np.stack([p[1] for p in pairs]))
        else:
            for offset, (first, second) in enumerate(pairs):
                out[start + offset] = _batch_distances(first[None], second[None])[0]
    return out
