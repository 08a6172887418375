"""Train the 2x upscaler (``workers.models.upscaler``) and measure it against Lanczos.

Pairs are made the way small paintings come about: a high-resolution image, and the same image
Lanczos-downsampled by 2. The high-resolution images are the procedural paintings (every style,
rendered at ``TrainConfig.side`` px) and tiles of scikit-image photos that are not among the
held-out evaluation photos. Loss: L1 on random crops. Adam with a cosine decay.

Measured on images no step saw (procedural paintings from another seed, and the four held-out
scikit-image photos): PSNR of the 2x result against the original, for the network and for
Lanczos, and edge sharpness: on the original's strongest edges (its top ``EDGE_SHARE`` of
gradient magnitudes), the result's mean gradient magnitude over the original's. 1 is as sharp as
the truth; blur stays below 1; ringing beside an edge does not count, as it would in a mean over
the whole image.

    python -m workers.training.upscaler --dry-run
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from workers.data.photos import HELD_OUT_PHOTOS, photo_tiles
from workers.data.procedural import STYLES, make_dataset
from workers.models.upscaler import Upscaler2x, UpscalerConfig

# scikit-image photos inside its wheel that the evaluation never uses, with the licence each one's
# docstring states (photos it states none for are left out).
TRAINING_PHOTOS = {
    "hubble_deep_field": "public domain (NASA)",
    "immunohistochemistry": "no known copyright restrictions",
    "retina": "CC0-1.0",
    "coins": "no known copyright restrictions",
    "camera": "CC0-1.0 (Lav Varshney)",
    "brick": "CC0-1.0 (CC0Textures)",
    "grass": "CC0-1.0 (CC0Textures)",
    "gravel": "CC0-1.0 (CC0Textures)",
}
PHOTO_TILE = 128
EVAL_SEED_OFFSET = 10_000  # evaluation paintings come from seed + this: never trained on


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 16
    crop: int = 64  # high-resolution crop side (the network sees half of it)
    side: int = 256  # procedural paintings are rendered at this side
    per_style: int = 40
    lr: float = 1e-3
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def downsample(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> [N,H/2,W/2,3] by Lanczos, as small paintings are made here."""
    return np.stack([np.asarray(Image.fromarray(im).resize((im.shape[1] // 2, im.shape[0] // 2),
                                                            Image.Resampling.LANCZOS)) for im in images])


def training_images(config: TrainConfig) -> list[np.ndarray]:
    paintings, _ = make_dataset(config.per_style, config.side, seed=config.seed)
    return list(paintings) + training_photo_tiles()


def training_photo_tiles() -> list[np.ndarray]:
    """RGB tiles of the training photos (grey ones repeated over three channels), cut from each
    photo at its own resolution so they keep their real fine detail."""
    from skimage import data

    tiles = []
    for name in TRAINING_PHOTOS:
        pixels = getattr(data, name)()
        rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
        for y in range(0, rgb.shape[0] - PHOTO_TILE + 1, PHOTO_TILE):
            for x in range(0, rgb.shape[1] - PHOTO_TILE + 1, PHOTO_TILE):
                tiles.append(np.ascontiguousarray(rgb[y:y + PHOTO_TILE, x:x + PHOTO_TILE]))
    return tiles


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def train_upscaler(config: TrainConfig, model_config: UpscalerConfig | None = None,
                   on_progress: Callable[[int, int, float], None] = lambda step, total, loss: None) -> Upscaler2x:
    images = training_images(config)
    rng = np.random.default_rng(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = Upscaler2x(model_config or UpscalerConfig())
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.steps, 1))
    crop = config.crop
    for step in range(1, config.steps + 1):
        picks = rng.integers(0, len(images), config.batch_size)
        crops = []
        for i in picks:
            image = images[i]
            y = 2 * rng.integers(0, (image.shape[0] - crop) // 2 + 1)
            x = 2 * rng.integers(0, (image.shape[1] - crop) // 2 + 1)
            patch = image[y:y + crop, x:x + crop]
            crops.append(patch[:, ::-1] if rng.random() < 0.5 else patch)
        high = np.stack(crops)
        target, low = _tensor(high), _tensor(downsample(high))
        loss = F.l1_loss(network(low), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        on_progress(step, config.steps, loss.item())
    return network.eval()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


EDGE_SHARE = 0.05


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


def edge_sharpness(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean gradient magnitude of ``result`` on the strongest edges of ``truth``, over truth's own."""
    truth_gradient = gradient_magnitude(truth)
    edges = truth_gradient >= np.quantile(truth_gradient, 1 - EDGE_SHARE)
    return float(gradient_magnitude(result)[edges].mean() / max(truth_gradient[edges].mean(), 1e-9))


def evaluation_sets(seed: int, side: int = 256, per_style: int = 4) -> dict[str, np.ndarray]:
    paintings, _ = make_dataset(per_style, side, seed=seed + EVAL_SEED_OFFSET)
    return {"paintings": paintings, "photos": np.stack(photo_tiles(HELD_OUT_PHOTOS, tile=128))}


@torch.inference_mode()
def evaluate_upscaler(network: Upscaler2x, sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per set: mean PSNR (dB) and edge sharpness of the network's 2x and of Lanczos 2x."""
    report: dict[str, Any] = {}
    for name, originals in sets.items():
        low = downsample(originals)
        learned = network(_tensor(low)).clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
        lanczos = np.stack([np.asarray(Image.fromarray(im).resize(originals.shape[1:3][::-1], Image.Resampling.LANCZOS))
                            for im in low])
        report[name] = {
            "images": int(len(originals)),
            "psnr_learned": round(float(np.mean([psnr(a, b) for a, b in zip(learned, originals, strict=True)])), 2),
            "psnr_lanczos": round(float(np.mean([psnr(a, b) for a, b in zip(lanczos, originals, strict=True)])), 2),
            "edge_sharpness_learned": round(float(np.mean([edge_sharpness(a, b) for a, b in
                                                          zip(learned, originals, strict=True)])), 3),
            "edge_sharpness_lanczos": round(float(np.mean([edge_sharpness(a, b) for a, b in
                                                          zip(lanczos, originals, strict=True)])), 3),
        }
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.training.upscaler", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="a few steps on small images")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    args = parser.parse_args(argv)
    quick = TrainConfig(steps=4, per_style=2, side=128, batch_size=4)
    config = quick if args.dry_run else TrainConfig(steps=args.steps)
    started = time.monotonic()
    network = train_upscaler(config, on_progress=lambda s, t, loss: print(f"step {s}/{t} l1 {loss:.4f}")
                             if s % 100 == 0 or s == t else None)
    print(f"{len(STYLES)} styles, {time.monotonic() - started:.0f} s")
    print(evaluate_upscaler(network, evaluation_sets(config.seed, side=128 if args.dry_run else 256)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
