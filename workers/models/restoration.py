"""Learned restoration for the "restoration" jobs: an inpainter and a damage detector.

- InpaintingNet: a U-Net of gated convolutions (Yu et al. 2019, "Free-Form Image Inpainting
  with Gated Convolution"). Every convolution computes features and a gate from the same
  input, out = ELU(features) * sigmoid(gate), so the network learns per pixel and channel
  which inputs to trust, where partial convolution (Liu et al. 2018) updates the mask by a
  fixed rule. Two stages, as in Yu et al., but the coarse one has no parameters: the holes
  are first filled by pull-push (Gortler et al. 1996), and the U-Net sees that fill plus the
  mask (4 channels, images in [-1, 1]) and adds a residual to it. Its last layer starts at
  zero, so an untrained network returns the pull-push fill. (With the holes zeroed instead,
  600 steps on two CPU cores reached a mean hole PSNR of 16.8 dB on procedural art, where
  pull-push alone gives 30.0 and Telea 23.4: a few minutes of training cannot learn from
  scratch even the colours around a hole.)
  Down: strided gated convolutions; bottom: dilated gated convolutions, as in Yu et al.'s
  coarse network, for a receptive field wider than the holes; up: nearest-neighbour
  upsampling (Yu et al.'s choice over transposed convolutions), the U-Net skip concatenated,
  then one gated convolution. The prediction is composited, mask * predicted + (1 - mask) *
  input: pixels outside the mask come back exactly as they went in.
- DamageDetector: a U-Net (Ronneberger et al. 2015) with group norm, from the damaged RGB
  image in [-1, 1] to one channel of damage-mask logits.
- FadeCorrector: undoes fading with one affine colour map per image (a 3x3 matrix and an
  offset, applied to every pixel), predicted from the whole picture seen small. Fading pulls
  every colour towards a paper tone and drains saturation, both affine in RGB, so its inverse
  is one too; what has to be learned is how much of an image's dullness is fade and how much
  is the picture. The map is affine and per pixel, so the thumbnail of a corrected image is
  the corrected thumbnail: it is learned on 64 px thumbnails and applied at full size, and a
  2048 px image costs one thumbnail and one pass of a 3x4 matrix. As in HDRNet (Gharbi et
  al. 2017) the network predicts the colour transform's coefficients, not pixels. Its last
  layer starts at zero: an untrained corrector is the identity.

The inpainter and detector take any H, W: they reflect-pad to a multiple of 2**depth and crop back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MAX_WIDTH_MULT = 4  # channels never exceed 4 * width
STEM_KERNEL = 5  # Yu et al.'s first layer is a 5x5 gated convolution
# The detector's convolutions are group-normalised, 4 groups: after 700 steps it found damage
# with F1 0.63 against 0.38 without a norm (0.58 with batch norm), on held-out procedural art.
DETECTOR_GROUPS = 4
# The fade corrector looks at the picture as a FADE_THUMBNAIL px square, and beside its features
# at these per-channel quantiles (black and white points, the spread between). Trained 3000 steps
# on faded procedural art, it reached 25.6 dB on faded held-out photo tiles with them and 23.9 dB
# with each channel's mean and standard deviation instead.
FADE_THUMBNAIL = 64
FADE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
FADE_HIDDEN = 64


@dataclass(frozen=True)
class RestorationConfig:
    """The architectures: everything needed to rebuild both networks from their state_dicts.

    Sized for two CPU cores: see workers.training.restoration.RestorationTrainConfig for what
    a couple of minutes of training buys at these sizes.
    """

    width: int = 16  # the inpainter's channels at full resolution
    depth: int = 3  # the inpainter's halvings
    dilations: tuple[int, ...] = (2, 4, 8)  # its bottleneck's dilated gated convolutions
    detector_width: int = 16
    detector_depth: int = 3
    fade_width: int = 16  # the fade corrector's first convolution's channels

    def __post_init__(self) -> None:
        if min(self.width, self.depth, self.detector_width, self.detector_depth, self.fade_width) < 1:
            raise ValueError(f"invalid restoration config: {self}")
        if self.detector_width % DETECTOR_GROUPS:
            raise ValueError(f"detector_width must be a multiple of {DETECTOR_GROUPS}, not {self.detector_width}")
        if any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be positive, not {self.dilations}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorationConfig:
        return cls(**{**data, "dilations": tuple(data.get("dilations", cls.dilations))})


def _widths(base: int, depth: int) -> list[int]:
    """Channels from full resolution down: base, 2 base, 4 base, 4 base, ..."""
    return [base * min(2**i, MAX_WIDTH_MULT) for i in range(depth + 1)]


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """``x`` [B,C,H,W] padded on the bottom and right to a multiple of ``multiple``; reflect
    where the image is big enough, replicate where it is not. Returns it and (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


class GatedConv2d(nn.Module):
    """One convolution yields features and gates: ELU(features) * sigmoid(gates)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride, dilation * (kernel - 1) // 2, dilation)

    def forward(self, x: Tensor) -> Tensor:
        features, gates = self.conv(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gates)


class InpaintingNet(nn.Module):
    """(image [B,3,H,W] in [-1,1], mask [B,1,H,W] in {0,1}, 1 = lost) -> restored [B,3,H,W].

    Invariant: where mask == 0 the output equals the input exactly. Values are not clamped
    (the loss sees them raw); clamp when converting to pixels.
    """

    def __init__(self, config: RestorationConfig):
        super().__init__()
        self.config = config
        widths = _widths(config.width, config.depth)
        self.stem = GatedConv2d(4, widths[0], STEM_KERNEL)
        self.downs = nn.ModuleList(nn.Sequential(GatedConv2d(cin, cout, 3, stride=2), GatedConv2d(cout, cout))
                                   for cin, cout in zip(widths, widths[1:], strict=False))
        self.bottleneck = nn.Sequential(*(GatedConv2d(widths[-1], widths[-1], dilation=d) for d in config.dilations))
        self.merges = nn.ModuleList(GatedConv2d(cin + cout, cout)
                                    for cin, cout in zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.to_rgb.weight)  # an untrained net returns the pull-push fill
        nn.init.zeros_(cast(Tensor, self.to_rgb.bias))

    def predict(self, image: Tensor, mask: Tensor) -> Tensor:
        """The raw prediction everywhere, before compositing: the pull-push fill plus the
        network's residual. Whatever ``image`` holds under the mask is never looked at."""
        coarse = pull_push_fill(image, mask)
        x, (h, w) = pad_to_multiple(torch.cat([coarse, mask], dim=1), 2**self.config.depth)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = self.bottleneck(skips.pop())
        for merge in self.merges:
            x = merge(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
        return coarse + self.to_rgb(x)[..., :h, :w]

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return composite(self.predict(image, mask), image, mask)


def pull_push_fill(image: Tensor, mask: Tensor) -> Tensor:
    """Holes filled by pull-push (Gortler et al. 1996): mask-weighted averages down a pyramid,
    then each level's holes from the bilinearly upsampled level below. No parameters."""
    valid = 1 - mask
    if valid.all() or min(image.shape[-2:]) < 2:
        return image
    weight = F.avg_pool2d(valid, 2, ceil_mode=True)
    coarse = F.avg_pool2d(image * valid, 2, ceil_mode=True) / weight.clamp_min(1e-6)
    coarse = pull_push_fill(coarse, (weight == 0).to(image.dtype))
    up = F.interpolate(coarse, size=image.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(valid > 0.5, image, up)


def composite(predicted: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """The prediction inside the mask, the input outside it (bitwise)."""
    return torch.where(mask > 0.5, predicted, image)


class DamageDetector(nn.Module):
    """(image [B,3,H,W] in [-1,1]) -> damage-mask logits [B,1,H,W]."""

    def __init__(self, config: RestorationConfig):
        super().__init__()
        self.config = config
        widths = [config.detector_width * 2**i for i in range(config.detector_depth + 1)]
        self.encoders = nn.ModuleList(_double_conv(cin, cout) for cin, cout in zip([3, *widths], widths, strict=False))
        self.decoders = nn.ModuleList(_double_conv(cin + cout, cout)
                                      for cin, cout in zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.to_logits = nn.Conv2d(widths[0], 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(image, 2**self.config.detector_depth)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        skips.pop()
        for decoder in self.decoders:
            x = decoder(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
        return self.to_logits(x)[..., :h, :w]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each with group norm (Wu & He 2018) and ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(DETECTOR_GROUPS, cout),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(DETECTOR_GROUPS, cout),
                         nn.ReLU(inplace=True))


class FadeCorrector(nn.Module):
    """(image [B,3,H,W] in [-1,1]) -> the image with its fade undone, same shape.

    ``coefficients`` gives the per-image map [B,3,4] (a residual on the identity: zero changes
    nothing); ``forward`` applies it. Values are not clamped; clamp when converting to pixels.
    """

    def __init__(self, config: RestorationConfig):
        super().__init__()
        self.config = config
        widths = _widths(config.fade_width, 3)  # four stride-2 convolutions: 64 -> 4 px
        self.features = nn.Sequential(*(layer for cin, cout in zip([3, *widths], widths, strict=False)
                                        for layer in (nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2))))
        statistics = 3 * (len(FADE_QUANTILES) + 1)  # the quantiles and the standard deviation, per channel
        self.head = nn.Sequential(nn.Linear(2 * widths[-1] + statistics, FADE_HIDDEN), nn.LeakyReLU(0.2),
                                  nn.Linear(FADE_HIDDEN, 12))
        last = cast(nn.Linear, self.head[-1])
        nn.init.zeros_(last.weight)  # an untrained corrector is the identity
        nn.init.zeros_(last.bias)
        self.register_buffer("quantiles", torch.tensor(FADE_QUANTILES), persistent=False)

    def coefficients(self, image: Tensor) -> Tensor:
        thumbnail = F.adaptive_avg_pool2d(image, FADE_THUMBNAIL)
        features = self.features(thumbnail)
        pixels = thumbnail.float().flatten(2)  # quantile wants fp32, also under autocast
        quantiles = torch.quantile(pixels, cast(Tensor, self.quantiles), dim=-1).permute(1, 0, 2).flatten(1)
        summary = torch.cat([features.mean((2, 3)).float(), features.amax((2, 3)).float(), quantiles,
                             pixels.std(-1)], dim=1)
        return self.head(summary).float().view(-1, 3, 4)

    def forward(self, image: Tensor) -> Tensor:
        return apply_colour_map(image, self.coefficients(image))


def apply_colour_map(image: Tensor, coefficients: Tensor) -> Tensor:
    """x + A x + b at every pixel, in fp32, with A = coefficients[:, :, :3], b = coefficients[:, :, 3]."""
    x = image.float()
    return x + torch.einsum("bij,bjhw->bihw", coefficients[:, :, :3], x) + coefficients[:, :, 3, None, None]
