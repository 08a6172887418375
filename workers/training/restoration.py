"""Train the restoration networks (workers.models.restoration) on clean images held in memory.

Every step crops ``patch`` px at random from the training images (with one of the 8 flips and
quarter turns), damages each crop with the simulator (workers.data.damage), and trains both
networks on the pair:

- the inpainter fills the simulator's mask on the *clean* crop: it learns to repair holes from
  intact surroundings, which is what it gets in the job pipeline (denoise and defade run
  before it). Loss: L1 on its raw prediction, holes weighted ``hole_weight`` and the rest
  ``valid_weight`` (Liu et al. 2018 use 6 : 1; here 6 : 0, see the config), plus an L1 over a
  Laplacian pyramid of the composited result (Bojanowski et al. 2018's Lap1) so that coarse
  structure counts as much as pixel detail; optionally an SN-PatchGAN hinge term (Yu et al.
  2019) on the composite.
- the detector learns the mask from the *damaged* crop, as the job sees it: BCE plus soft
  Dice (Milletari et al. 2016), which keeps thin scratches from drowning in the background.
- the fade corrector learns to map a damaged picture's colours back to the clean ones. It
  judges a whole picture, so it trains on large crops (5/8 of an image's side up to all of
  it, at most ``FADE_CROP`` px), damaged as the others' but faded ``fade_probability`` of
  the time, both as FADE_THUMBNAIL px thumbnails: its colour map is affine and per pixel, so
  the thumbnail of a corrected image is the corrected thumbnail, and what it learns at 64 px
  it applies at any size. Loss: L1 outside the damage mask (a hole's backing is no colour of
  the picture's).

Adam (fused), one optimizer per network. All randomness after initialisation comes from two
numpy Generators, one for the inpainter's and detector's shared batches and one for the fade
corrector's (so that adding it left the other two's training bitwise as it was), whose states
are in the checkpoint with the networks, the optimizers, the step and the sampler's position:
N steps straight and k steps + checkpoint + resume to N give bitwise the same weights on CPU.

On a CUDA device the forward passes run in bf16 autocast (``workers.devices.autocast``; off
with ``mixed_precision=False`` or ``ARTFORGE_CUDA_BF16=0``); the losses are computed in fp32
on the networks' outputs, outside autocast, and so are the backward passes. On the CPU nothing
changes.

    python -m workers.training.restoration --dry-run   (a few steps on random data, checkpoint round trip)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from workers import devices
from workers.data.damage import DamageConfig, simulate_damage
from workers.metrics.perceptual import feature_distance
from workers.models.efficientnet_lite import load_pretrained
from workers.models.gan import to_uint8
from workers.models.restoration import (
    FADE_THUMBNAIL,
    DamageDetector,
    FadeCorrector,
    InpaintingNet,
    RestorationConfig,
    composite,
)
from workers.training.sampling import EpochSampler, montage

DAMAGE_PRESETS: dict[str, Callable[[], DamageConfig]] = {
    "all": DamageConfig,
    "holes_only": DamageConfig.holes_only,
    # the holes restoration's quality goal is stated for (issue 4): 32-64 px across
    "large_holes": lambda: DamageConfig.only("holes", hole_size=(32, 64)),
    "scratches_only": DamageConfig.scratches_only,
    "fade_only": DamageConfig.fade_only,
    "noise_only": DamageConfig.noise_only,
}
SAMPLE_ROWS = 6
SAMPLE_STREAM = 1  # the sample grid's damage is drawn from default_rng([seed, SAMPLE_STREAM])
DICE_SMOOTH = 1.0
PATCH_GAN_WIDTH = 32  # SN-PatchGAN: 4x4 stride-2 convolutions 32 -> 64 -> 128, then one to logits
LEAKY_SLOPE = 0.2
FADE_CROP = 128  # px: larger fade-corrector crops are shrunk to this before damage (it sees 64 px)
FADE_CROP_SHARE = 0.625  # its crops' smallest side, as a share of the image's shorter side
FADE_DATA_STREAM = 2  # the fade corrector's data come from default_rng([seed, FADE_DATA_STREAM])


@dataclass(frozen=True)
class RestorationTrainConfig:
    """How to train. 1000 steps take about 2.5 minutes on two quiet CPU cores (~7 steps/s;
    2-3x longer when the cores are shared).

    Measured (RestorationConfig's defaults, 144 procedural images at 128 px, 36 held out,
    ``evaluate_restoration`` with holes only): pooled hole PSNR after 1000 steps 15.49 dB
    learned, 15.04 the pull-push fill it starts from, 15.00 Navier-Stokes, 14.53 Telea, 5.73
    damaged; after 500 steps the network had added nothing to its fill yet, after 2000 15.47.
    Training on holes only gave 15.29; width 24 15.38 at 1.6x the time; Laplacian weight 10
    15.16; an L2 hole loss 15.06 and lr 4e-3 14.97 (both at 700 steps, where L1 and 2e-3 gave 15.23).

    On 32-64 px holes (the quality goal's size; the inpainter trained alone, one thread, 144
    procedural images; held out: 36 procedural images at 128 px / 16 tiles of four scikit-image
    photos), pooled hole PSNR in dB: pull-push 16.50 / 16.91, biharmonic 16.34 / 17.65, Telea
    15.86 / 16.92; these defaults with lr 2e-3 17.28 / 16.94, +0.78 dB over the best classical
    method on paintings and -0.71 on photos. Nothing tried did better: 2000 steps 17.27 / 16.02; 128 px
    patches with holes-only damage 16.48 / 16.85; two FFC spectral blocks (Suvorov et al. 2022)
    in the bottleneck 16.95 / 16.89; an L2 hole loss 16.44 / 16.88; 66 photo tiles of other
    scikit-image images added to the training set 16.48 / 16.81; width 24 and 480 images 17.02 /
    17.00 (single runs each: seed-to-seed spread not measured). Training 16x longer on 6.6x the
    images (bench.restoration_learning_curve) lifts the served fill to +1.0 to +1.2 dB over the
    best classical method on paintings and +0.2 to +0.45 on photos, flat after ~4000 steps
    (bench/RESULTS.md).
    """
    steps: int = 1000
    batch_size: int = 8
    patch: int = 64
    lr: float = 2e-3  # the detector's (and the critic's)
    # At 2e-3 the inpainter's last gated layer could shut for good: with no normalisation and an
    # unbounded ELU, its inputs grew ~200-fold, its gates saturated at 0 (0.5 % open) and from step
    # ~300 on the fill was exactly the pull-push one. Which runs it hit depended on rounding (the
    # same seed with 2 torch threads, not with 1); clipping the gradient norm at 1.0 or 0.2 did not
    # prevent it. At 1e-3 that run learned: 16.09 dB pooled on 32-64 px holes, pull-push 15.80. The
    # detector keeps 2e-3: at 1e-3 its F1 fell from 0.73 to 0.61 in the same run.
    inpainter_lr: float = 1e-3
    cosine_decay: bool = True  # lr falls to 0 at ``steps`` along a half cosine (Loshchilov & Hutter 2017)
    # The learning rates rise linearly over these first steps: a fine-tuning run's fresh Adam
    # otherwise moves every weight of a trained network by a full learning rate at once.
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.99)
    hole_weight: float = 6.0  # L1 weight of masked pixels
    # L1 weight of unmasked pixels. The prediction there is the input plus the network's
    # residual, so this weight only pulls the residual towards zero; L1's constant gradient
    # then held the residual at zero in the holes too (no gain over the fill in 1500 steps).
    valid_weight: float = 0.0
    pyramid_weight: float = 1.0
    pyramid_levels: int = 4
    adversarial: bool = False
    adversarial_weight: float = 0.01
    # Weight of a perceptual loss on the composite: its distance from the clean crop in
    # EfficientNet-Lite0's ImageNet features (workers.metrics.perceptual; Johnson et al. 2016,
    # LaMa's "high receptive field" loss uses a segmentation network the same way). 0: off.
    perceptual_weight: float = 0.0
    damage: str = "all"  # a key of DAMAGE_PRESETS
    # The fade corrector: pictures per step, and the share of them faded (the rest teach it to
    # leave a picture that is not faded alone). Measured (3000 steps, fade-only damage, 36 held-
    # out procedural images / 16 photo tiles, mean PSNR of faded pictures): L1 28.5 / 25.6 dB,
    # L2 28.9 / 25.3; a loss of each picture's log MSE (the mean PSNR itself) 25.5 / 24.2, since
    # it spent itself on returning unfaded pictures exactly; random saturation and gamma on the
    # clean crops 24.1 / 24.1. After 1000 steps: 27.4 / 25.6 dB; with the whole damage mix
    # rather than fading alone 27.8 / 24.7 (single runs), which is what a job's scan looks like;
    # in this loop with these defaults 27.2 / 25.7 (bench/RESULTS.md).
    fade_batch: int = 16
    fade_probability: float = 0.8
    checkpoint_every: int = 200
    sample_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.damage not in DAMAGE_PRESETS:
            raise ValueError(f"unknown damage preset {self.damage!r}; known: {sorted(DAMAGE_PRESETS)}")
        if min(self.batch_size, self.fade_batch, self.checkpoint_every, self.sample_every, self.pyramid_levels) < 1 \
                or min(self.steps, self.warmup_steps) < 0 or not 0 <= self.fade_probability <= 1:
            raise ValueError(f"invalid training config: {self}")
        if self.patch < 16 or self.patch % 2**(self.pyramid_levels - 1):
            raise ValueError(f"patch must be >= 16 px and divisible by 2**(pyramid_levels - 1), not {self.patch}")
        weights = (self.valid_weight, self.pyramid_weight, self.adversarial_weight, self.perceptual_weight)
        if min(self.lr, self.inpainter_lr, self.hole_weight) <= 0 or min(weights) < 0:
            raise ValueError(f"invalid training config: {self}")

    @property
    def damage_config(self) -> DamageConfig:
        return DAMAGE_PRESETS[self.damage]()

    @property
    def fade_damage_config(self) -> DamageConfig:
        """The fade corrector's damage: the preset's, faded ``fade_probability`` of the time."""
        return dataclasses.replace(self.damage_config, fade_probability=self.fade_probability)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorationTrainConfig:
        return cls(**{**data, "betas": tuple(data.get("betas", cls.betas))})


@dataclass
class RestorationTrainResult:
    inpainter_state: dict[str, Tensor]  # InpaintingNet(model_config).load_state_dict(...)
    detector_state: dict[str, Tensor]  # DamageDetector(model_config).load_state_dict(...)
    fade_state: dict[str, Tensor]  # FadeCorrector(model_config).load_state_dict(...)
    model_config: RestorationConfig
    steps_done: int
    final_losses: dict[str, float]


# -- data -------------------------------------------------------------------------------


def _validate(images: Sequence[np.ndarray], patch: int) -> None:
    if len(images) == 0:
        raise ValueError("no training images")
    for image in images:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < patch:
            raise ValueError(f"images must be uint8 [H,W,3] with H, W >= {patch}, got {image.dtype} {image.shape}")


def random_crop(image: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """A ``patch`` px square at a random place, in one of the 8 orientations of the square."""
    top = int(rng.integers(0, image.shape[0] - patch + 1))
    left = int(rng.integers(0, image.shape[1] - patch + 1))
    turn = int(rng.integers(8))
    crop = np.rot90(image[top:top + patch, left:left + patch], turn % 4)
    return np.ascontiguousarray(crop[:, ::-1] if turn >= 4 else crop)


def damaged_batch(crops: Sequence[np.ndarray] | np.ndarray, rng: np.random.Generator,
                  config: DamageConfig) -> tuple[np.ndarray, np.ndarray]:
    """(damaged uint8 [B,P,P,3], mask bool [B,P,P]) from clean crops, damage drawn from ``rng``."""
    damaged = [simulate_damage(crop, rng, config) for crop in crops]
    return np.stack([d.image for d in damaged]), np.stack([d.mask for d in damaged])


def fade_pairs(images: Sequence[np.ndarray], rng: np.random.Generator, count: int,
               config: DamageConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, damaged, valid) float [count, 3|3|1, T, T] thumbnails (T = FADE_THUMBNAIL) of
    large random crops of random ``images``; ``valid`` is 1 where the damage mask is empty."""
    cleans, damaged, valid = [], [], []
    for index in rng.integers(len(images), size=count):
        image = images[index]
        side = min(image.shape[:2])
        crop = random_crop(image, int(rng.integers(math.ceil(FADE_CROP_SHARE * side), side + 1)), rng)
        if crop.shape[0] > FADE_CROP:
            crop = cv2.resize(crop, (FADE_CROP, FADE_CROP), interpolation=cv2.INTER_AREA)
        broken = simulate_damage(crop, rng, config)
        cleans.append(_thumbnail(crop.astype(np.float32) / 127.5 - 1))
        damaged.append(_thumbnail(broken.image.astype(np.float32) / 127.5 - 1))
        valid.append(_thumbnail((~broken.mask).astype(np.float32)[:, :, None]) > 0.999)
    return np.stack(cleans), np.stack(damaged), np.stack(valid).astype(np.float32)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """float [H, W, C] -> [C, T, T] by adaptive average pooling, as FadeCorrector sees images."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return F.adaptive_avg_pool2d(tensor, FADE_THUMBNAIL)[0].numpy()


def to_tensor(images: np.ndarray, device: torch.device) -> Tensor:
    """uint8 [B,H,W,3] -> float [B,3,H,W] in [-1, 1]."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def mask_tensor(masks: np.ndarray, device: torch.device) -> Tensor:
    """bool [B,H,W] -> float [B,1,H,W] in {0, 1}."""
    return torch.from_numpy(masks).to(device).unsqueeze(1).float()


# -- losses -----------------------------------------------------------------------------


_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def laplacian_l1(a: Tensor, b: Tensor, levels: int) -> Tensor:
    """Mean over ``levels`` of the mean absolute difference of one Laplacian-pyramid band
    (the last level is the low-pass rest): every scale weighs the same, however few pixels."""
    x = a - b  # the pyramid is linear: the bands of a - b are the differences of the bands
    kernel = torch.outer(_BINOMIAL, _BINOMIAL).to(x).expand(x.shape[1], 1, 5, 5)
    total = x.new_zeros(())
    for _ in range(levels - 1):
        low = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])
        total = total + (x - low).abs().mean()
        x = low[..., ::2, ::2]
    return (total + x.abs().mean()) / levels


def inpainting_losses(raw: Tensor, restored: Tensor, clean: Tensor, mask: Tensor,
                      config: RestorationTrainConfig) -> tuple[Tensor, Tensor]:
    """The inpainter's reconstruction losses: L1 of its raw prediction, holes weighted
    ``hole_weight`` and the rest ``valid_weight``, and the Laplacian-pyramid L1 of the composite
    ``restored`` (weighted ``pyramid_weight`` by the caller)."""
    weights = config.valid_weight + (config.hole_weight - config.valid_weight) * mask
    return (raw - clean).abs().mul(weights).mean(), laplacian_l1(restored, clean, config.pyramid_levels)


def soft_dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """1 - soft Dice over the whole batch (an image without damage still counts)."""
    p = torch.sigmoid(logits)
    return 1 - (2 * (p * target).sum() + DICE_SMOOTH) / (p.sum() + target.sum() + DICE_SMOOTH)


class PatchDiscriminator(nn.Module):
    """SN-PatchGAN (Yu et al. 2019): (image, mask) -> a map of real/fake logits, hinge loss."""

    def __init__(self, width: int = PATCH_GAN_WIDTH):
        super().__init__()
        widths = [width, 2 * width, 4 * width]
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1))
                                   for cin, cout in zip([4, *widths], widths, strict=False))
        self.to_logits = spectral_norm(nn.Conv2d(widths[-1], 1, 3, padding=1))

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        x = torch.cat([image, mask], dim=1)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        return self.to_logits(x)


# -- the loop ---------------------------------------------------------------------------


class _Run:
    """Everything a checkpoint holds: networks, optimizers, step, numpy RNG, sampler position."""

    def __init__(self, model_config: RestorationConfig, train_config: RestorationTrainConfig, n: int,
                 device: torch.device):
        with torch.random.fork_rng(devices=[]):  # initialise from the seed, leave the caller's RNG alone
            torch.manual_seed(train_config.seed)
            self.inpainter = InpaintingNet(model_config).to(device)
            self.detector = DamageDetector(model_config).to(device)
            self.critic = PatchDiscriminator().to(device) if train_config.adversarial else None
            self.fade_corrector = FadeCorrector(model_config).to(device)  # last: the others' draws are as before
        # Frozen and pretrained: not part of the checkpoint.
        self.features = load_pretrained().to(device) if train_config.perceptual_weight else None
        adam: dict[str, Any] = {"lr": train_config.lr, "betas": train_config.betas, "fused": True}
        self.opt_inpainter = torch.optim.Adam(self.inpainter.parameters(), **{**adam, "lr": train_config.inpainter_lr})
        self.opt_detector = torch.optim.Adam(self.detector.parameters(), **adam)
        self.opt_fade_corrector = torch.optim.Adam(self.fade_corrector.parameters(), **adam)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), **adam) if self.critic else None
        self.rng = np.random.default_rng(train_config.seed)
        self.fade_rng = np.random.default_rng([train_config.seed, FADE_DATA_STREAM])
        self.sampler = EpochSampler(n, train_config.seed)
        self.step = 0
        self.model_config, self.train_config = model_config, train_config

    def state(self, losses: dict[str, float]) -> dict[str, Any]:
        """A copy of the whole state, safe to keep while training goes on."""
        state = {
            "step": self.step,
            "inpainter": self.inpainter.state_dict(),
            "detector": self.detector.state_dict(),
            "fade_corrector": self.fade_corrector.state_dict(),
            "opt_inpainter": self.opt_inpainter.state_dict(),
            "opt_detector": self.opt_detector.state_dict(),
            "opt_fade_corrector": self.opt_fade_corrector.state_dict(),
            "rng": self.rng.bit_generator.state,
            "fade_rng": self.fade_rng.bit_generator.state,
            "sampler": self.sampler.position(),
            "losses": losses,
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict(),
        }
        if self.critic is not None and self.opt_critic is not None:
            state.update(critic=self.critic.state_dict(), opt_critic=self.opt_critic.state_dict())
        return copy.deepcopy(state)

    def start_from(self, weights: dict[str, torch.Tensor]) -> None:
        """Fine-tuning: the networks start from a trained version's weights (the registry's
        ``inpainter.*``, ``detector.*`` and ``fade_corrector.*`` tensors); optimizers and the
        critic start fresh. A version from before the fade corrector leaves it untrained."""
        for prefix, network in (("inpainter.", self.inpainter), ("detector.", self.detector),
                                ("fade_corrector.", self.fade_corrector)):
            part = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            if part or prefix != "fade_corrector.":
                network.load_state_dict(part)

    def set_lr_scale(self, scale: float) -> None:
        """Every optimizer at ``scale`` times its configured learning rate."""
        tc = self.train_config
        for opt, lr in ((self.opt_inpainter, tc.inpainter_lr), (self.opt_detector, tc.lr),
                        (self.opt_fade_corrector, tc.lr), (self.opt_critic, tc.lr)):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr * scale

    def load(self, state: dict[str, Any]) -> dict[str, float]:
        if RestorationConfig.from_dict(state["model_config"]) != self.model_config:
            raise ValueError("checkpoint was trained with a different restoration config")
        saved = state["train_config"]
        if saved["seed"] != self.train_config.seed or saved["adversarial"] != self.train_config.adversarial:
            raise ValueError("checkpoint was trained with a different seed or adversarial setting")
        self.inpainter.load_state_dict(state["inpainter"])
        self.detector.load_state_dict(state["detector"])
        self.opt_inpainter.load_state_dict(state["opt_inpainter"])
        self.opt_detector.load_state_dict(state["opt_detector"])
        if "fade_corrector" in state:  # a checkpoint from before it resumes with a fresh one
            self.fade_corrector.load_state_dict(state["fade_corrector"])
            self.opt_fade_corrector.load_state_dict(state["opt_fade_corrector"])
            self.fade_rng.bit_generator.state = state["fade_rng"]
        if self.critic is not None and self.opt_critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.opt_critic.load_state_dict(state["opt_critic"])
        self.rng.bit_generator.state = state["rng"]
        self.sampler = EpochSampler.at(state["sampler"], self.sampler.n, self.train_config.seed)
        self.step = int(state["step"])
        return dict(state["losses"])


def learning_rate_scale(config: RestorationTrainConfig, step: int) -> float:
    """The share of the configured learning rates that step ``step`` (counted from 0) uses: a
    function of the step alone, so a resumed run follows the same schedule."""
    warmup = min(1.0, (step + 1) / (config.warmup_steps + 1))
    if not config.cosine_decay:
        return warmup
    return warmup * 0.5 * (1 + math.cos(math.pi * step / max(config.steps, 1)))


def train_restoration(
    images: Sequence[np.ndarray],
    model_config: RestorationConfig,
    train_config: RestorationTrainConfig,
    *,
    resume: dict[str, Any] | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    on_progress: Callable[[int, int, dict[str, float]], None] = lambda step, total, losses: None,
    check_cancel: Callable[[], None] = lambda: None,
    save_checkpoint: Callable[[dict[str, Any]], None] = lambda state: None,
    save_samples: Callable[[int, Image.Image], None] = lambda step, grid: None,
    device: str = "cpu",
    mixed_precision: bool = True,
) -> RestorationTrainResult:
    """Train from scratch, or from ``resume`` (a state given to ``save_checkpoint``) up to
    ``train_config.steps``, on clean uint8 [H,W,3] images of any sizes >= ``patch``.
    ``init_weights`` (a registered version's weights) starts a fresh run from that version;
    a resumed run ignores it.

    ``check_cancel`` is called before every step; when it raises, the state is checkpointed
    and the exception propagates. ``on_progress`` gets every step's losses; checkpoints go out
    every ``checkpoint_every`` steps, sample grids every ``sample_every`` steps and after the last.
    ``mixed_precision``: bf16 autocast for the forward passes on CUDA (no effect on the CPU); not
    part of the config, so checkpoints and model cards are the same either way.
    """
    tc = train_config
    _validate(images, tc.patch)
    dev = torch.device(device)
    run = _Run(model_config, tc, len(images), dev)
    losses = run.load(resume) if resume is not None else {}
    if resume is None and init_weights is not None:
        run.start_from(init_weights)
    damage, fade_damage = tc.damage_config, tc.fade_damage_config
    fixed = sample_inputs(images, tc.patch, damage, tc.seed)

    while run.step < tc.steps:
        try:
            check_cancel()
        except BaseException:
            save_checkpoint(run.state(losses))
            raise
        run.set_lr_scale(learning_rate_scale(tc, run.step))
        crops = [random_crop(images[i], tc.patch, run.rng) for i in run.sampler.next_batch(tc.batch_size)]
        broken_np, mask_np = damaged_batch(crops, run.rng, damage)
        clean, broken, mask = to_tensor(np.stack(crops), dev), to_tensor(broken_np, dev), mask_tensor(mask_np, dev)

        with devices.autocast(dev, mixed_precision):  # CUDA only: bf16 forward, fp32 outputs for the losses
            raw = run.inpainter.predict(clean, mask).float()
        restored = composite(raw, clean, mask)
        loss_l1, loss_pyramid = inpainting_losses(raw, restored, clean, mask, tc)
        loss_inpaint = loss_l1 + tc.pyramid_weight * loss_pyramid
        losses = {"l1": loss_l1.item(), "pyramid": loss_pyramid.item()}
        if run.features is not None:
            with devices.autocast(dev, mixed_precision):
                loss_perceptual = feature_distance(run.features, restored, clean).float().mean()
            loss_inpaint = loss_inpaint + tc.perceptual_weight * loss_perceptual
            losses["perceptual"] = loss_perceptual.item()
        if run.critic is not None and run.opt_critic is not None:
            with devices.autocast(dev, mixed_precision):
                critic_real = run.critic(clean, mask).float()
                critic_fake = run.critic(restored.detach(), mask).float()
            loss_critic = torch.relu(1 - critic_real).mean() + torch.relu(1 + critic_fake).mean()
            run.opt_critic.zero_grad(set_to_none=True)
            loss_critic.backward()
            run.opt_critic.step()
            run.critic.requires_grad_(False)  # the inpainter's step needs gradients for the image only
            with devices.autocast(dev, mixed_precision):
                critic_restored = run.critic(restored, mask).float()
            loss_adversarial = -critic_restored.mean()
            run.critic.requires_grad_(True)
            loss_inpaint = loss_inpaint + tc.adversarial_weight * loss_adversarial
            losses.update(critic=loss_critic.item(), adversarial=loss_adversarial.item())
        run.opt_inpainter.zero_grad(set_to_none=True)
        loss_inpaint.backward()
        run.opt_inpainter.step()

        with devices.autocast(dev, mixed_precision):
            logits = run.detector(broken).float()
        loss_bce = F.binary_cross_entropy_with_logits(logits, mask)
        loss_dice = soft_dice_loss(logits, mask)
        run.opt_detector.zero_grad(set_to_none=True)
        (loss_bce + loss_dice).backward()
        run.opt_detector.step()

        fade_clean, fade_damaged, fade_valid = (torch.from_numpy(a).to(dev) for a in fade_pairs(
            images, run.fade_rng, tc.fade_batch, fade_damage))
        with devices.autocast(dev, mixed_precision):
            corrected = run.fade_corrector(fade_damaged).float()
        loss_fade = ((corrected - fade_clean).abs() * fade_valid).sum() / (3 * fade_valid.sum()).clamp_min(1)
        run.opt_fade_corrector.zero_grad(set_to_none=True)
        loss_fade.backward()
        run.opt_fade_corrector.step()

        run.step += 1
        losses.update(bce=loss_bce.item(), dice=loss_dice.item(), fade=loss_fade.item())
        on_progress(run.step, tc.steps, losses)
        if run.step % tc.checkpoint_every == 0:
            save_checkpoint(run.state(losses))
        if run.step % tc.sample_every == 0 or run.step == tc.steps:
            save_samples(run.step, sample_grid(run.inpainter, run.detector, *fixed))

    def detached(net: nn.Module) -> dict[str, Tensor]:
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    return RestorationTrainResult(detached(run.inpainter), detached(run.detector), detached(run.fade_corrector),
                                  model_config, run.step, losses)


# -- samples ----------------------------------------------------------------------------


def sample_inputs(images: Sequence[np.ndarray], patch: int, damage: DamageConfig,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed (clean, damaged, mask) for the grid: centre crops of SAMPLE_ROWS images spread
    over the set, damaged from their own generator (the training stream is not touched)."""
    rng = np.random.default_rng([seed, SAMPLE_STREAM])
    chosen = np.linspace(0, len(images) - 1, min(SAMPLE_ROWS, len(images))).round().astype(int)
    crops = []
    for i in chosen:
        h, w = images[i].shape[:2]
        top, left = (h - patch) // 2, (w - patch) // 2
        crops.append(images[i][top:top + patch, left:left + patch])
    clean = np.stack(crops)
    return (clean, *damaged_batch(clean, rng, damage))


def mask_overlay(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """uint8 [...,3] from two bool masks: white where both, red where only ``truth`` (missed),
    cyan where only ``found`` (false alarm), black where neither."""
    both, missed, false_alarm = truth & found, truth & ~found, ~truth & found
    out = np.zeros((*truth.shape, 3), np.uint8)
    out[both] = 255
    out[missed] = (255, 0, 0)
    out[false_alarm] = (0, 255, 255)
    return out


def sample_grid(inpainter: InpaintingNet, detector: DamageDetector, clean: np.ndarray, damaged: np.ndarray,
                mask: np.ndarray) -> Image.Image:
    """One row per sample: damaged | mask (true vs detected, see ``mask_overlay``) | restored
    (the inpainter's fill of the true mask) | clean."""
    device = next(inpainter.parameters()).device
    modes = inpainter.training, detector.training
    inpainter.eval()
    detector.eval()
    with torch.inference_mode():
        m = mask_tensor(mask, device)
        restored = to_uint8(inpainter(to_tensor(clean, device), m))
        found = (detector(to_tensor(damaged, device)) > 0).squeeze(1).cpu().numpy()
    inpainter.train(modes[0])
    detector.train(modes[1])
    rows = np.stack([damaged, mask_overlay(mask, found), restored, clean], axis=1)
    return montage(rows.reshape(-1, *rows.shape[2:]), columns=4)


# -- dry run ----------------------------------------------------------------------------


def dry_run(steps: int = 4) -> RestorationTrainResult:
    """A few steps on random images of mixed sizes with tiny networks, with a checkpoint after
    half of them round-tripped through bytes and resumed: proves the loop end to end in seconds."""
    from workers.training.checkpoint import state_from_bytes, state_to_bytes

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (side, side + 5, 3), dtype=np.uint8) for side in (32, 40, 48, 33)]
    model_config = RestorationConfig(width=8, depth=2, dilations=(2,), detector_width=4, detector_depth=2)
    saved: list[bytes] = []
    first = RestorationTrainConfig(steps=steps // 2, batch_size=4, patch=32, checkpoint_every=steps // 2,
                                   sample_every=steps, adversarial=True)
    train_restoration(images, model_config, first, save_checkpoint=lambda s: saved.append(state_to_bytes(s)))
    grids: list[Image.Image] = []
    result = train_restoration(
        images, model_config, RestorationTrainConfig(**{**first.to_dict(), "steps": steps}),
        resume=state_from_bytes(saved[-1]), save_samples=lambda step, grid: grids.append(grid),
        on_progress=lambda step, total, losses: print(f"step {step}/{total} {losses}"))
    print(f"dry run: {result.steps_done} steps, checkpoint {len(saved[-1])} bytes, sample grid {grids[-1].size}")
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.training.restoration",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", required=True,
                        help="train a few steps on random data (real training runs as a service job)")
    parser.parse_args(argv)
    dry_run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
