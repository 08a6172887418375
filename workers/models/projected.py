"""A projected discriminator (Sauer et al. 2021, "Projected GANs Converge Faster"): small
discriminators that read a frozen, pretrained network's features instead of pixels.

- Features: EfficientNet-Lite0's ImageNet stages (``workers.models.efficientnet_lite``) on the
  image resized to ``FEATURE_SIDE`` (bilinear), at strides 4, 8 and 16. The network is frozen
  and is not part of this module's state: checkpoints hold the small heads only.
- Cross-channel mixing: each stage's features pass through a fixed random 1x1 convolution
  (Kaiming-uniform, drawn from ``MIXING_SEED``, kept as a buffer and never trained), which spreads
  the pretrained channels so no head can lean on a few of them (the paper's CCM).
- One head per stage: spectrally normalised 4x4 stride-2 convolutions down to a 6x6 map, one
  3x3 convolution that also sees the feature spread within each pair of images of one class
  (``workers.models.gan.pair_spread``, as the pixel discriminator does; at weight 1, with it or
  without it, the generator drew one composition per style in 2,000 steps, and at weight 0.25
  only some styles varied: bench/RESULTS.md), then a projection logit as in
  ``workers.models.gan.Discriminator``: w.h + embed(y).h, with h the map averaged over its
  positions (pretrained features are large: a sum made the first logits hundreds).

Gradients reach the generator through the frozen network; the heads are trained with the pixel
discriminator's optimizer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from workers.models.efficientnet_lite import STAGE_CHANNELS, EfficientNetLite0, load_pretrained
from workers.models.gan import LEAKY_SLOPE, GanConfig, pair_spread

FEATURE_SIDE = 96  # the feature network's input side: maps of 24, 12 and 6 at strides 4, 8, 16
STAGES = ("s4", "s8", "s16")
STAGE_STRIDES = {"s4": 4, "s8": 8, "s16": 16}
MIXED_CHANNELS = {"s4": 64, "s8": 128, "s16": 256}
HEAD_SIDE = 6  # each head convolves its stage down to this side
MIXING_SEED = 0


class StageHead(nn.Module):
    """[B,C,S,S] features of one stage (the batch made of pairs of one class), labels [B] -> logits [B]."""

    def __init__(self, channels: int, side: int, n_classes: int):
        super().__init__()
        convs = []
        while side > HEAD_SIDE:
            convs.append(spectral_norm(nn.Conv2d(channels, channels, 4, 2, 1)))
            side //= 2
        self.convs = nn.ModuleList(convs)
        self.last = spectral_norm(nn.Conv2d(channels + 1, channels, 3, 1, 1))
        self.linear = spectral_norm(nn.Linear(channels, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, channels))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        h = F.leaky_relu(self.last(torch.cat([x, pair_spread(x)], dim=1)), LEAKY_SLOPE).mean(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


def _mixing_weights(cin: int, cout: int, generator: torch.Generator) -> Tensor:
    """A 1x1 convolution's weight drawn as Kaiming-uniform initialisation draws it."""
    bound = 1 / math.sqrt(cin)
    return (torch.rand(cout, cin, 1, 1, generator=generator) * 2 - 1) * bound * math.sqrt(3)


class ProjectedDiscriminator(nn.Module):
    """(images [B,3,R,R] in [-1,1], labels [B]) -> logits [B, len(STAGES)], one per head."""

    features: EfficientNetLite0  # frozen; a plain attribute, not a submodule (see __init__)

    def __init__(self, config: GanConfig):
        super().__init__()
        generator = torch.Generator().manual_seed(MIXING_SEED)
        for stage in STAGES:
            self.register_buffer(f"mix_{stage}", _mixing_weights(STAGE_CHANNELS[stage], MIXED_CHANNELS[stage],
                                                                 generator))
        self.heads = nn.ModuleDict({stage: StageHead(MIXED_CHANNELS[stage], FEATURE_SIDE // STAGE_STRIDES[stage],
                                                     config.n_classes) for stage in STAGES})
        # Set through object.__setattr__ so the frozen network is no submodule: state_dict(),
        # parameters() and requires_grad_() see the heads only.
        object.__setattr__(self, "features", load_pretrained())

    def _network(self, device: torch.device) -> EfficientNetLite0:
        if next(self.features.parameters()).device != device:
            object.__setattr__(self, "features", self.features.to(device))
        return self.features

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        x = F.interpolate(images, size=(FEATURE_SIDE, FEATURE_SIDE), mode="bilinear", align_corners=False)
        maps = self._network(images.device).stages(x.contiguous(memory_format=torch.channels_last),
                                                   last=STAGES[-1])
        return torch.stack([self.heads[stage](F.conv2d(maps[stage], getattr(self, f"mix_{stage}")), labels)
                            for stage in STAGES], dim=1)
