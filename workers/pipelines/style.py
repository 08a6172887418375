"""Style conversion: a photo becomes a painting, in a named style or in any painting's style."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from shared.job_params import StyleTransferParams
from shared.styles import get_style
from workers.job_context import CancelCheck, InvalidJobInput, JobContext, ProgressFn
from workers.models import style_networks
from workers.pipelines.registry import Output, PipelineResult, register_pipeline
from workers.pipelines.tiling import process_tiled

# Tiles bound the named-style network's memory: a 2048 px image whole needs ~2.9 GB,
# in 768 px tiles ~0.5 GB. Instance norm sees each tile separately; the wide overlap
# and the cross-fade hide the small differences in tone between tiles.
MAX_TILE = 1024
TILE_OVERLAP = 128


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def keep_colours(stylized: Image.Image, original: Image.Image) -> Image.Image:
    """Brightness from the stylized image, colour (chroma) from the original."""
    y, _, _ = stylized.convert("YCbCr").split()
    _, cb, cr = original.resize(stylized.size, Image.Resampling.LANCZOS).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


@register_pipeline("style_transfer")
def stylize(
    inputs: dict[str, Image.Image],
    params: StyleTransferParams,
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    device = ctx.device
    content = fit_within(inputs["content"], params.max_side)
    if min(content.size) < style_networks.MIN_SIDE:
        raise InvalidJobInput(f"the content image is {content.width}x{content.height}; both sides "
                              f"need at least {style_networks.MIN_SIDE} px", code="image_too_small")
    strength = params.strength
    preserve = params.preserve_colors
    progress(0.05, "stylizing", f"{content.width}x{content.height}")
    check_cancel()

    if "style" in inputs:
        stylized = style_networks.stylize_arbitrary(content, inputs["style"], strength, device)
        networks = ["arbitrary_predict", "arbitrary_transform"]
        style_desc: dict[str, Any] = {"mode": "arbitrary"}
        progress(0.85, "stylizing", "done")
    else:
        if params.style is None:
            raise InvalidJobInput("give a named style or a style image", code="invalid_parameters")
        style = get_style(params.style)
        array = np.asarray(content, dtype=np.float32) / 255.0

        def on_tile(done: int, total: int) -> None:
            progress(0.05 + 0.8 * done / total, "stylizing", f"tile {done}/{total}")
            check_cancel()

        out = process_tiled(
            array,
            lambda tile: style_networks.stylize_named_array(tile, style.index, device),
            MAX_TILE,
            TILE_OVERLAP,
            on_tile,
        )
        stylized = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        if strength < 1.0:  # the named network has no style dial: fade towards the photo
            stylized = Image.blend(content, stylized, strength)
        networks = ["multistyle26"]
        style_desc = {"mode": "named", "name": style.name, "index": style.index}

    if preserve:
        stylized = keep_colours(stylized, content)
    check_cancel()
    return PipelineResult(
        outputs=[Output(stylized)],
        metadata={
            "model": style_networks.model_facts(networks, device),
            "style": style_desc,
            "effective_params": {"strength": strength, "preserve_colors": preserve,
                                 "width": stylized.width, "height": stylized.height},
        },
    )
