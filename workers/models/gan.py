"""Class-conditional GAN for the "creation" jobs: a DCGAN-family generator with conditional
batch norm and a projection discriminator with spectral norm, both also conditioned on a
few continuous attributes in [0, 1].

- Generator (Radford et al. 2016, DCGAN): z -> 4x4 -> transposed 4x4 stride-2 convolutions
  doubling the side, halving the channels, down to RGB and tanh. Every norm is a conditional
  batch norm (de Vries et al. 2017; Miyato & Koyama 2018): BN without affine, then a
  per-example gain and bias from a class embedding plus a linear map of the attributes.
- Discriminator (Miyato & Koyama 2018, projection discriminator): DCGAN's 4x4 stride-2
  convolutions with LeakyReLU(0.2), every weight spectrally normalised (Miyato et al. 2018),
  features summed over space to h; logit = w.h + embed(y).h + (V a).h.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from workers.devices import to_device

RESOLUTIONS = (32, 64, 128)
BASE_SIDE = 4  # both networks meet at a 4x4 feature map
MAX_WIDTH_MULT = 8  # channels never exceed 8 * ngf (or ndf), as in DCGAN
LEAKY_SLOPE = 0.2  # DCGAN's discriminator activation
EMBED_INIT_STD = 0.02  # DCGAN's init scale, for the conditional gains and biases around (1, 0)


@dataclass(frozen=True)
class GanConfig:
    """The architecture: everything needed to rebuild the networks from a state_dict.

    The defaults are sized for two CPU cores at 32 px: with TrainConfig's defaults, 1500 steps
    (about 2 minutes) give samples a style classifier puts in their style ~90 % of the time on
    the procedural dataset; 48/48 reached the same at 1.5x the time per step.
    """

    n_classes: int
    resolution: int = 32
    nz: int = 128
    ngf: int = 32
    ndf: int = 32
    n_attrs: int = 3
    g_spectral_norm: bool = False  # SN in G too (SAGAN/BigGAN); at 32 px: 90.0 % vs 89.7 %, no gain

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {self.resolution}")
        if self.n_classes < 1 or self.nz < 1 or self.ngf < 1 or self.ndf < 1 or self.n_attrs < 1:
            raise ValueError(f"invalid GAN config: {self}")

    @property
    def n_stages(self) -> int:
        """Doublings between the 4x4 base and the output side."""
        return int(math.log2(self.resolution // BASE_SIDE))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GanConfig:
        return cls(**data)


def _widths(base: int, n_stages: int) -> list[int]:
    """Channels from the 4x4 map outwards: base * 2^(n-1), ..., base * 2, base (capped)."""
    return [base * min(2 ** (n_stages - 1 - i), MAX_WIDTH_MULT) for i in range(n_stages)]


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine; gain and bias per example from its class and attributes.

    Invariant: with equal labels and attributes every example gets the same gain and bias.
    """

    def __init__(self, channels: int, n_classes: int, n_attrs: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.embed = nn.Embedding(n_classes, 2 * channels)
        self.attrs = nn.Linear(n_attrs, 2 * channels, bias=False)
        nn.init.normal_(self.embed.weight, 0.0, EMBED_INIT_STD)
        self.embed.weight.data[:, :channels] += 1.0  # gains start near 1, biases near 0
        nn.init.normal_(self.attrs.weight, 0.0, EMBED_INIT_STD)

    def forward(self, x: Tensor, labels: Tensor, attrs: Tensor) -> Tensor:
        gain, bias = (self.embed(labels) + self.attrs(attrs)).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return torch.addcmul(bias, self.norm(x), gain)


class Generator(nn.Module):
    """(z [B,nz], labels [B] long, attrs [B,n_attrs] in [0,1]) -> images [B,3,R,R] in [-1,1]."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        sn = spectral_norm if config.g_spectral_norm else (lambda m: m)
        widths = _widths(config.ngf, config.n_stages)
        self.project = sn(nn.Linear(config.nz, widths[0] * BASE_SIDE**2, bias=False))
        self.ups = nn.ModuleList(sn(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))
                                 for cin, cout in zip(widths, widths[1:], strict=False))
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(w, config.n_classes, config.n_attrs) for w in widths)
        self.to_rgb = sn(nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1))

    def forward(self, z: Tensor, labels: Tensor, attrs: Tensor) -> Tensor:
        x = self.project(z).view(z.shape[0], -1, BASE_SIDE, BASE_SIDE)
        x = torch.relu(self.norms[0](x, labels, attrs))
        for up, norm in zip(self.ups, self.norms[1:], strict=True):
            x = torch.relu(norm(up(x), labels, attrs))
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """(images [B,3,R,R], labels [B] long, attrs [B,n_attrs]) -> logits [B] (unbounded, hinge loss)."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        widths = _widths(config.ndf, config.n_stages)[::-1]
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1))
                                   for cin, cout in zip([3, *widths], widths, strict=False))
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(config.n_classes, widths[-1]))
        self.attrs = spectral_norm(nn.Linear(config.n_attrs, widths[-1], bias=False))

    def forward(self, x: Tensor, labels: Tensor, attrs: Tensor) -> Tensor:
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), LEAKY_SLOPE)
        h = x.sum(dim=(2, 3))
        projection = (self.embed(labels) + self.attrs(attrs)) * h
        return self.linear(h).squeeze(1) + projection.sum(dim=1)


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
