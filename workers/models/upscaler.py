"""A learned 2x upscaler for paintings: enlarges creation results (64 or 128 px) to 256-1024 px
without the blur of interpolation.

The network predicts the detail that bicubic interpolation misses: out = bicubic_2x(x) + residual,
where the residual comes from a few residual blocks at the input's resolution and a sub-pixel
convolution (Shi et al. 2016, ESPCN's PixelShuffle; EDSR's residual blocks without batch norm,
Lim et al. 2017). Larger factors apply it repeatedly (x4 = x2 twice), then a final Lanczos resize
lands on the exact side asked for. Trained by ``workers.training.upscaler`` on the procedural
paintings and photo tiles, from pairs made by Lanczos downsampling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

MAX_SIDE = 1024


@dataclass(frozen=True)
class UpscalerConfig:
    channels: int = 32
    blocks: int = 6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpscalerConfig:
        return cls(**data)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Upscaler2x(nn.Module):
    """[B,3,H,W] in [-1,1] -> [B,3,2H,2W] in [-1,1] (not clamped: the caller clamps once)."""

    def __init__(self, config: UpscalerConfig):
        super().__init__()
        self.config = config
        self.head = nn.Conv2d(3, config.channels, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(config.channels) for _ in range(config.blocks)))
        self.tail = nn.Conv2d(config.channels, 3 * 4, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as plain bicubic interpolation
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        h = self.head(x)
        return base + F.pixel_shuffle(self.tail(h + self.body(h)), 2)


def doublings_for(side: int, target: int) -> int:
    """How many 2x passes take ``side`` to at least ``target``."""
    passes = 0
    while side << passes < target:
        passes += 1
    return passes


@torch.inference_mode()
def upscale_images(network: Upscaler2x, images: list[Image.Image], target: int, device: str = "cpu",
                   batch_size: int = 8) -> list[Image.Image]:
    """Each image enlarged to ``target`` x ``target``: 2x passes of the network until it is at least
    that large, then a Lanczos resize to the exact side (only ever downwards, by less than 2x).
    Square inputs of one size; RGB out."""
    if not images:
        return []
    if not 1 <= target <= MAX_SIDE:
        raise ValueError(f"target side must lie in [1, {MAX_SIDE}], got {target}")
    side = images[0].width
    passes = doublings_for(side, target)
    was_training = network.training
    network.eval()
    out: list[Image.Image] = []
    try:
        for start in range(0, len(images), batch_size):
            arrays = np.stack([np.asarray(im.convert("RGB")) for im in images[start:start + batch_size]])
            x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
            for _ in range(passes):
                x = network(x).clamp(-1, 1)
            pixels = x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for p in pixels:
                im = Image.fromarray(p)
                out.append(im if im.width == target else im.resize((target, target), Image.Resampling.LANCZOS))
    finally:
        network.train(was_training)
    return out
