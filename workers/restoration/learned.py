"""Restoration with the trained networks (workers.models.restoration), for the job pipeline.

Build a network once (``workers.models.builders``: ``load_inpainter`` / ``load_detector`` /
``load_fade_corrector``) and call ``inpaint_learned`` / ``detect_learned`` per image (or tile),
``defade_learned`` per whole image (its colour map is global, so it is never tiled): uint8
[H, W, 3] RGB in, numpy out, like ``workers.restoration.classical``. Calls run under
``torch.inference_mode`` and never change the network; any H, W works (the networks pad
internally). On a CUDA device they run the way ``workers.devices`` says (bf16 autocast,
channels_last, pinned host copies); on the CPU in fp32, exactly as before those helpers existed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workers import devices
from workers.models.gan import to_uint8
from workers.models.restoration import DamageDetector, FadeCorrector, InpaintingNet
from workers.restoration import classical

# The served fill is the network's averaged with OpenCV's Navier-Stokes one: their errors differ
# (the network continues edges and stripes, diffusion keeps the rim's colours smooth), so the average
# beats both. On 32-64 px holes (bench/RESULTS.md, pooled hole PSNR, 35 held-out paintings / 16 photo
# tiles): network alone 16.10 / 17.52 dB, Navier-Stokes 15.96 / 18.06, averaged 16.47 / 18.22.
# Navier-Stokes costs ~12 ms a 512 px image, against ~330 ms for the network.
LEARNED_FILL_SHARE = 0.5


def _image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [1, 3, H, W] in [-1, 1] on ``device``: the uint8 pixels travel
    (a quarter of the bytes of floats), and on CUDA the batch is channels_last."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    # a writable C-contiguous array (np.asarray of a PIL image is read-only, which torch warns about)
    pixels = devices.to_device(torch.from_numpy(np.require(image, requirements=["C", "W"])), device)
    return devices.image_batch(pixels.permute(2, 0, 1)[None].float() / 127.5 - 1, device)


def _mask_tensor(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    return devices.to_device(torch.from_numpy(mask), device)[None, None].float()


def _on(net: torch.nn.Module, device: str) -> torch.device:
    """The device to run on; moves the network there the first time (a no-op afterwards)."""
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:  # parameters report "cuda:N", never "cuda"
        target = torch.device("cuda", torch.cuda.current_device())
    if next(net.parameters()).device != target:
        devices.prepare_module(net, target)
    return target


def inpaint_learned(net: InpaintingNet, image: np.ndarray, mask: np.ndarray, device: str = "cpu",
                    share: float = LEARNED_FILL_SHARE) -> np.ndarray:
    """``image`` with the pixels under ``mask`` (bool [H, W]) filled by the inpainter's fill
    weighted ``share`` and the Navier-Stokes one the rest (1.0: the network alone); pixels
    outside the mask are returned exactly. An empty mask returns an unchanged copy."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must lie in [0, 1], not {share}")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be bool {image.shape[:2]}, got {mask.shape}")
    if not mask.any():
        return image.copy()
    dev = _on(net, device)
    with devices.inference(dev):
        learned = to_uint8(net(_image_tensor(image, dev), _mask_tensor(mask, dev)).float())[0]
    if share < 1:
        diffused = classical.inpaint(image, mask, "navier_stokes")
        learned = np.rint(share * learned.astype(np.float32) + (1 - share) * diffused).astype(np.uint8)
    return np.where(mask[:, :, None], learned, image)


def detect_learned(net: DamageDetector, image: np.ndarray, device: str = "cpu", threshold: float = 0.5) -> np.ndarray:
    """bool [H, W]: True where the detector's damage probability is at least ``threshold``."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), not {threshold}")
    dev = _on(net, device)
    with devices.inference(dev):
        logits = net(_image_tensor(image, dev))[0, 0].float()  # bf16 on CUDA: compare in fp32
    return (logits >= math.log(threshold / (1 - threshold))).cpu().numpy()


def defade_learned(net: FadeCorrector, image: np.ndarray, device: str = "cpu") -> np.ndarray:
    """``image`` with the fade corrector's colour map applied to every pixel (uint8 [H, W, 3])."""
    dev = _on(net, device)
    with devices.inference(dev):
        return to_uint8(net(_image_tensor(image, dev)))[0]
