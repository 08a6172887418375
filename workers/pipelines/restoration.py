"""Restoration: repair a damaged or faded artwork; the restored image and the mask used come back.

Defined behaviour (the API documents it):
- Operations run in a fixed order, whatever order they were asked in: denoise, then defade,
  then inpaint; the damage is detected (``auto_mask``) on the image as it came in, which is
  what the detector was trained on.
- A mask is white where the image is damaged: any pixel at least 50 % grey counts, so
  anti-aliased or JPEG-compressed masks work. With ``auto_mask`` the detected damage is added
  to the given mask. A mask that covers more than ``MAX_MASK_FRACTION`` of the image leaves
  nothing to restore from: the job fails with ``mask_covers_image``.
- ``method: learned`` inpaints and detects with the pinned restoration model, in tiles for
  large images (the fill is the network's averaged with Navier-Stokes', as
  ``workers.restoration.learned.inpaint_learned`` serves it), and de-fades with its fade
  corrector (one colour map for the whole image) when the model card's ``learned_operations``
  list ``defade``: when the corrector beat the classical de-fade on the held-out images.
  Otherwise de-fading, and always denoising, stay classical. ``method: classical`` uses
  OpenCV/scikit-image only.
- Results: index 0 the restored image, index 1 the mask (white = was inpainted), which carries no
  watermark: its pixels are data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from shared.job_params import RestorationParams
from workers.devices import torch_device
from workers.job_context import CancelCheck, InvalidJobInput, JobContext, ProgressFn
from workers.models.builders import restoration_model_from_card
from workers.models.restoration import DamageDetector, FadeCorrector, InpaintingNet
from workers.pipelines.registry import Output, OutputRole, PipelineResult, register_pipeline
from workers.pipelines.tiling import process_tiled
from workers.restoration import classical

MASK_THRESHOLD = 128
MAX_MASK_FRACTION = 0.9
# Learned networks see the image in tiles: memory stays bounded for a 2048 px image, and a
# 64 px overlap (cross-faded) is wider than the networks' seams.
MAX_TILE = 512
TILE_OVERLAP = 64


def mask_from_image(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    if mask.size != size:
        raise InvalidJobInput(f"the mask is {mask.width}x{mask.height} but the image is {size[0]}x{size[1]}",
                              code="mask_size_mismatch")
    return np.asarray(mask.convert("L")) >= MASK_THRESHOLD


class Restorer:
    """The operations of one job, learned where the job pinned a model, else classical."""

    def __init__(self, params: RestorationParams, ctx: JobContext):
        self.params, self.device = params, torch_device(ctx.device)
        self.inpainter: InpaintingNet | None = None
        self.detector: DamageDetector | None = None
        self.fade_corrector: FadeCorrector | None = None
        self.model_facts: dict[str, Any] = {"method": params.method}
        if params.method == "learned":
            model = ctx.models.resolve(params.model)
            card = model.card
            if card.get("task") != "restoration":
                raise InvalidJobInput(f"{model.pinned} is not a restoration model", code="invalid_model")
            self.inpainter, self.detector, self.fade_corrector = ctx.models.load(model, restoration_model_from_card)
            self.model_facts.update({"name": model.name, "version": model.version, "public": model.public,
                                     "weights_sha256": card.get("weights_sha256"),
                                     "architecture": card.get("architecture"), "dataset": card.get("dataset")})

    def detect(self, image: np.ndarray) -> np.ndarray:
        detector = self.detector
        if detector is None:
            return classical.detect_damage(image)
        from workers.restoration.learned import detect_learned

        def tile(rgb: np.ndarray) -> np.ndarray:
            found = detect_learned(detector, to_uint8(rgb), self.device)
            return np.repeat(found[:, :, None].astype(np.float32), 3, axis=2)

        return process_tiled(image.astype(np.float32) / 255, tile, MAX_TILE, TILE_OVERLAP)[:, :, 0] >= 0.5

    def defade(self, image: np.ndarray) -> np.ndarray:
        if self.fade_corrector is None:
            return classical.defade(image)
        from workers.restoration.learned import defade_learned

        return defade_learned(self.fade_corrector, image, self.device)

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        inpainter = self.inpainter
        if inpainter is None:
            return classical.inpaint(image, mask, method=self.params.inpaint_method)
        from workers.restoration.learned import inpaint_learned

        def tile(rgba: np.ndarray) -> np.ndarray:
            tile_mask = rgba[:, :, 3] >= 0.5
            out = inpaint_learned(inpainter, to_uint8(rgba[:, :, :3]), tile_mask, self.device)
            return np.dstack([out.astype(np.float32) / 255, tile_mask.astype(np.float32)])

        stacked = np.dstack([image.astype(np.float32) / 255, mask.astype(np.float32)])
        restored = to_uint8(process_tiled(stacked, tile, MAX_TILE, TILE_OVERLAP)[:, :, :3])
        # Outside the mask the image stays exactly as it was, seams and all.
        return np.where(mask[:, :, None], restored, image)


def to_uint8(unit: np.ndarray) -> np.ndarray:
    return (np.clip(unit, 0, 1) * 255 + 0.5).astype(np.uint8)


@register_pipeline("restoration")
def restore(
    inputs: dict[str, Image.Image],
    params: RestorationParams,
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    original = inputs["image"].convert("RGB")
    image = np.asarray(original)
    operations = params.operations
    progress(0.05, "loading", params.method)
    restorer = Restorer(params, ctx)

    mask = np.zeros(image.shape[:2], dtype=bool)
    mask_sources = []
    if "mask" in inputs:
        mask |= mask_from_image(inputs["mask"], original.size)
        mask_sources.append("given")
    if params.auto_mask:
        progress(0.1, "detecting damage", f"{original.width}x{original.height}")
        mask |= restorer.detect(image)
        mask_sources.append("detected")
    check_cancel()
    fraction = float(mask.mean())
    if "inpaint" in operations and fraction > MAX_MASK_FRACTION:
        raise InvalidJobInput(f"the mask covers {fraction:.0%} of the image (more than {MAX_MASK_FRACTION:.0%}); "
                              "nothing is left to restore from", code="mask_covers_image")

    steps = [op for op in ("denoise", "defade", "inpaint") if op in operations]
    for done, op in enumerate(steps):
        progress(0.2 + 0.7 * done / len(steps), op, f"{op} ({done + 1}/{len(steps)})")
        if op == "denoise":
            image = classical.denoise(image)
        elif op == "defade":
            image = restorer.defade(image)
        elif mask.any():
            image = restorer.inpaint(image, mask)
        check_cancel()

    return PipelineResult(
        outputs=[Output(Image.fromarray(image), OutputRole.RESTORED),
                 Output(Image.fromarray((mask * 255).astype(np.uint8)), OutputRole.MASK, watermarked=False)],
        metadata={
            "model": restorer.model_facts,
            "operations": steps,
            "mask": {"sources": mask_sources, "fraction": round(fraction, 5)},
            "inpaint_method": params.inpaint_method if restorer.inpainter is None else "learned",
            "defade_method": "classical" if restorer.fade_corrector is None else "learned",
        },
    )
