"""Class-conditional GAN for the "creation" jobs: a residual generator with conditional batch
norm and hierarchical noise, and a projection discriminator with spectral norm; both are also
conditioned on a few continuous colour attributes in [0, 1].

- Generator (BigGAN's layout, Brock et al. 2019, at a CPU's budget): z is split into chunks; the
  first chunk with the condition makes a 4x4 map, each later chunk with the condition steers one
  residual up-block (nearest 2x upsampling, two 3x3 convolutions; upsample + conv leaves no
  checkerboard, as transposed convolutions do). Every norm is a conditional batch norm: BN
  without affine, then a per-example gain and bias from (noise chunk, class embedding, attributes)
  (de Vries et al. 2017). Noise reaching every block is what keeps works of one style apart.
- Discriminator (Miyato & Koyama 2018): strided 4x4 convolutions with LeakyReLU(0.2), every weight
  spectrally normalised (Miyato et al. 2018); logit = w.h + embed(y).h + (V a).h. Before its last
  layer it sees the feature spread within pairs of images of one class (the batch is made of
  such pairs: StyleGAN's minibatch standard deviation, per pair), so a generator that draws one
  picture per style is told apart from real pairs, which always differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from workers.devices import to_device

ARCHITECTURE = "residual-cbn-gan"
RESOLUTIONS = (32, 64, 128, 256)
BASE_SIDE = 4  # both networks meet at a 4x4 feature map
MAX_CHANNELS = 256
LEAKY_SLOPE = 0.2  # the discriminator's activation, as in DCGAN


@dataclass(frozen=True)
class GanConfig:
    """The architecture: everything needed to rebuild the networks from a state_dict.

    ``ngf`` / ``ndf``: channels at the full resolution; they double at every halving of the
    side, up to MAX_CHANNELS.
    """

    n_classes: int
    resolution: int = 64
    z_chunk: int = 24
    embed_dim: int = 64
    ngf: int = 16
    ndf: int = 32
    n_attrs: int = 3

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {self.resolution}")
        if min(self.n_classes, self.z_chunk, self.embed_dim, self.ngf, self.ndf, self.n_attrs) < 1:
            raise ValueError(f"invalid GAN config: {self}")

    @property
    def n_stages(self) -> int:
        """Doublings between the 4x4 base and the output side."""
        return int(math.log2(self.resolution // BASE_SIDE))

    @property
    def nz(self) -> int:
        """Length of a noise vector: one chunk for the base and one per up-block."""
        return self.z_chunk * (self.n_stages + 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GanConfig:
        return cls(**data)


def _widths(base: int, n_stages: int) -> list[int]:
    """Channels from the 4x4 map outwards to the full side: ..., base * 2, base (capped)."""
    return [min(base * 2 ** (n_stages - i), MAX_CHANNELS) for i in range(n_stages + 1)]


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine; gain and bias per example from a condition vector, starting at (1, 0).

    Invariant: equal condition vectors give equal gains and biases.
    """

    def __init__(self, channels: int, condition: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(condition, channels)
        self.bias = nn.Linear(condition, channels)
        for layer, start in ((self.gain, 1.0), (self.bias, 0.0)):
            nn.init.zeros_(layer.weight)
            nn.init.constant_(layer.bias, start)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        return torch.addcmul(self.bias(condition)[:, :, None, None], self.norm(x),
                             self.gain(condition)[:, :, None, None])


class UpBlock(nn.Module):
    """CBN -> ReLU -> 2x nearest -> conv3x3 -> CBN -> ReLU -> conv3x3, plus an upsampled 1x1 skip."""

    def __init__(self, cin: int, cout: int, condition: int):
        super().__init__()
        self.norm1, self.norm2 = ConditionalBatchNorm2d(cin, condition), ConditionalBatchNorm2d(cout, condition)
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.norm1(x, condition)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), condition)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """(z [B,nz], labels [B] long, attrs [B,n_attrs] in [0,1]) -> images [B,3,R,R] in [-1,1]."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        widths = _widths(config.ngf, config.n_stages)
        condition = config.z_chunk + config.embed_dim
        self.embed = nn.Embedding(config.n_classes, config.embed_dim)
        self.attrs = nn.Linear(config.n_attrs, config.embed_dim)
        self.base = nn.Linear(condition, widths[0] * BASE_SIDE**2)
        self.blocks = nn.ModuleList(UpBlock(cin, cout, condition)
                                    for cin, cout in zip(widths, widths[1:], strict=False))
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, 1, 1)

    def forward(self, z: Tensor, labels: Tensor, attrs: Tensor) -> Tensor:
        chunks = z.split(self.config.z_chunk, dim=1)
        style = self.embed(labels) + self.attrs(attrs * 2 - 1)
        x = self.base(torch.cat([chunks[0], style], dim=1)).view(len(z), -1, BASE_SIDE, BASE_SIDE)
        for block, chunk in zip(self.blocks, chunks[1:], strict=True):
            x = block(x, torch.cat([chunk, style], dim=1))
        return torch.tanh(self.to_rgb(F.relu(self.out_norm(x))))


def pair_spread(h: Tensor) -> Tensor:
    """[B,C,H,W] -> [B,1,H,W]: the mean standard deviation between the two members of each
    consecutive pair (rows 0-1, 2-3, ...), the same value for both members."""
    b, _, height, width = h.shape
    if b % 2:
        raise ValueError("the discriminator sees pairs: the batch size must be even")
    spread = h.view(b // 2, 2, *h.shape[1:]).std(dim=1).mean(dim=(1, 2, 3))
    return spread.repeat_interleave(2).view(b, 1, 1, 1).expand(b, 1, height, width)


class Discriminator(nn.Module):
    """(images [B,3,R,R] as pairs of one class, labels [B], attrs [B,n_attrs]) -> logits [B]."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        widths = _widths(config.ndf, config.n_stages)[::-1][:-1]  # at half the side ... at 4x4
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1))
                                   for cin, cout in zip([3, *widths], widths, strict=False))
        last = widths[-1]
        self.spread_conv = spectral_norm(nn.Conv2d(last + 1, last, 3, 1, 1))
        self.linear = spectral_norm(nn.Linear(last, 1))
        self.embed = spectral_norm(nn.Embedding(config.n_classes, last))
        self.attrs = spectral_norm(nn.Linear(config.n_attrs, last, bias=False))

    def forward(self, x: Tensor, labels: Tensor, attrs: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        x = F.leaky_relu(self.spread_conv(torch.cat([x, pair_spread(x)], dim=1)), LEAKY_SLOPE)
        h = x.sum(dim=(2, 3))
        projection = (self.embed(labels) + self.attrs(attrs)) * h
        return self.linear(h).squeeze(1) + projection.sum(dim=1)


def image_attributes(images: Tensor) -> Tensor:
    """Differentiable colour attributes [B,3] of images [B,3,H,W] in [-1,1], defined exactly as
    ``workers.data.attributes.colour_attributes`` defines them on uint8 pixels (brightness: mean
    Rec.601 luma; saturation: mean HSV saturation; warmth: (mean(R - B) + 1) / 2)."""
    pixels = (images.float() + 1) / 2
    red, green, blue = pixels.unbind(dim=1)
    brightness = (0.299 * red + 0.587 * green + 0.114 * blue).mean(dim=(1, 2))
    high, low = pixels.max(dim=1).values, pixels.min(dim=1).values
    saturation = torch.where(high > 0, (high - low) / high.clamp_min(1e-6), torch.zeros_like(high)).mean(dim=(1, 2))
    warmth = ((red - blue).mean(dim=(1, 2)) + 1) / 2
    return torch.stack([brightness, saturation, warmth], dim=1)


def to_uint8(images: Tensor) -> np.ndarray:
    """[B,3,R,R] in [-1,1] -> uint8 [B,R,R,3]."""
    scaled = ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def truncated_noise(n: int, nz: int, seed: int, truncation: float | None) -> Tensor:
    """Standard normal z [n,nz] from its own generator, entries with |z| > truncation redrawn
    (BigGAN's truncation trick); None draws plain N(0, 1). Same arguments, same tensor."""
    if truncation is not None and truncation <= 0:
        raise ValueError("truncation must be positive (or None for none)")
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, nz, generator=rng)
    if truncation is not None:
        outside = z.abs() > truncation
        while outside.any():
            z[outside] = torch.randn(int(outside.sum()), generator=rng)
            outside = z.abs() > truncation
    return z


def condition_tensors(config: GanConfig, labels: np.ndarray | list[int],
                      attrs: np.ndarray | list[list[float]]) -> tuple[Tensor, Tensor]:
    """Labels [N] long and attributes [N,n_attrs] float32 as tensors; a ValueError when a label
    is not one of the model's classes or an attribute lies outside [0, 1]."""
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    attrs_t = torch.as_tensor(np.asarray(attrs, dtype=np.float32)).reshape(len(labels_t), config.n_attrs)
    if len(labels_t) and (labels_t.min() < 0 or labels_t.max() >= config.n_classes):
        raise ValueError(f"labels must lie in [0, {config.n_classes})")
    if len(attrs_t) and (attrs_t.min() < 0 or attrs_t.max() > 1):
        raise ValueError("attrs must lie in [0, 1]")
    return labels_t, attrs_t


def generate(generator: Generator, labels: np.ndarray | list[int], attrs: np.ndarray | list[list[float]],
             seed: int, truncation: float | None = None, batch_size: int = 64) -> np.ndarray:
    """Images uint8 [N,R,R,3] for N labels and N attribute vectors.

    Invariant: the same (weights, labels, attrs, seed, truncation) give the same array on CPU,
    whatever the batch size: all noise is drawn up front from a generator seeded with ``seed``.
    ``truncation`` is BigGAN's threshold: |z| entries above it are redrawn. Off (None) by
    default: with batch norm's running statistics a truncated z is a shrunken z and images fade
    (on stand-in styles a classifier placed 95 % of samples in their class with None, 91 % at
    2.0 and 57 % at 1.0).
    """
    config = generator.config
    labels_t, attrs_t = condition_tensors(config, labels, attrs)
    z = truncated_noise(len(labels_t), config.nz, seed, truncation)
    return generate_from_noise(generator, z, labels_t, attrs_t, batch_size)


def generate_from_noise(generator: Generator, z: Tensor, labels: Tensor, attrs: Tensor,
                        batch_size: int = 64) -> np.ndarray:
    """Images uint8 [N,R,R,3] for N rows of noise z [N,nz], labels [N] and attributes [N,n_attrs]
    (``condition_tensors``), on the generator's device, ``batch_size`` rows per forward.

    Invariant: in eval mode (batch norm on its running statistics) each image depends on its own
    row alone, so on CPU rows generated together give the same array as rows generated apart:
    creation jobs that share one forward (``workers.creation_batching``) get the pixels each would
    get alone. The module's train/eval mode is left as it was found.
    """
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(labels), batch_size):
                part = slice(start, start + batch_size)
                out.append(to_uint8(generator(to_device(z[part], device), to_device(labels[part], device),
                                              to_device(attrs[part], device))))
    finally:
        generator.train(was_training)
    side = generator.config.resolution
    return np.concatenate(out) if out else np.zeros((0, side, side, 3), np.uint8)
