"""Colour attributes of images, used to condition the GAN and to check that prompts steer it.

Every attribute lies in [0, 1]:
- brightness: mean Rec.601 luma / 255;
- saturation: mean HSV saturation, (max - min) / max per pixel, 0 where max is 0;
- warmth: (mean(R - B) / 255 + 1) / 2, so 0.5 is neutral, 1 all red, 0 all blue.
"""

from __future__ import annotations

import numpy as np

ATTRIBUTE_NAMES = ("brightness", "saturation", "warmth")

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def colour_attributes(images: np.ndarray) -> np.ndarray:
    """Attributes of uint8 images: [N, H, W, 3] -> float32 [N, 3], or [H, W, 3] -> [3], in ATTRIBUTE_NAMES order."""
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] or [H, W, 3] images, got shape {images.shape}")
    single = images.ndim == 3
    batch = images[None] if single else images
    pixels = batch.astype(np.float32) / 255.0  # [N, H, W, 3]
    brightness = (pixels @ _LUMA_WEIGHTS).mean(axis=(1, 2))
    high, low = pixels.max(axis=-1), pixels.min(axis=-1)
    saturation = np.divide(high - low, high, out=np.zeros_like(high), where=high > 0).mean(axis=(1, 2))
    warmth = ((pixels[..., 0] - pixels[..., 2]).mean(axis=(1, 2)) + 1.0) / 2.0
    attributes = np.clip(np.stack([brightness, saturation, warmth], axis=-1), 0.0, 1.0).astype(np.float32)
    return attributes[0] if single else attributes
