"""Prompt interpretation: English through the bundled MiniLM embedding, Chinese through a lexicon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from workers.data.procedural import STYLES
from workers.prompts import ABSTRACT_STYLES, ATTRIBUTES, GEOMETRIC_STYLES, PromptCondition, interpret_prompt

DESCRIPTIONS = {style.name: style.description for style in STYLES}
LABELS = list(DESCRIPTIONS)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # The test machine's cores are shared; one thread avoids oversubscription stalls.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def interpret(prompt: str) -> PromptCondition:
    condition = interpret_prompt(prompt, LABELS, DESCRIPTIONS)
    assert_invariants(condition, LABELS)
    return condition


def assert_invariants(condition: PromptCondition, labels: list[str]) -> None:
    assert set(condition.label_weights) <= set(labels)
    if condition.label_weights:
        assert sum(condition.label_weights.values()) == pytest.approx(1.0)
        assert all(0.0 < w <= 1.0 for w in condition.label_weights.values())
    assert set(condition.attributes) <= set(ATTRIBUTES)
    assert all(0.0 <= v <= 1.0 for v in condition.attributes.values())


def top_label(condition: PromptCondition) -> str:
    return max(condition.label_weights, key=condition.label_weights.__getitem__)


# --- Chinese ----------------------------------------------------------------------------------


def test_chinese_vivid_modern_abstract_prompt_targets_high_saturation_and_the_abstract_styles() -> None:
    condition = interpret("抽象画，色彩鲜艳，有现代感")
    assert condition.language == "zh"
    assert condition.attributes["saturation"] >= 0.7
    assert set(condition.attributes) == {"saturation"}
    assert condition.label_weights == pytest.approx({style: 1 / 6 for style in ABSTRACT_STYLES})
    assert {"抽象", "鲜艳", "现代感"} <= set(condition.understood)


@pytest.mark.parametrize(("prompt", "label"), [("水墨山水", "ink_landscape"), ("一幅国画", "ink_landscape"),
                                               ("城市夜景", "skyline"), ("天际线", "skyline"),
                                               ("静物：花瓶和水果", "still_life")])
def test_chinese_names_of_the_figurative_styles(prompt: str, label: str) -> None:
    condition = interpret(prompt)
    assert condition.label_weights == {label: 1.0}
    assert condition.understood


def test_chinese_stripes_names_the_stripes_style() -> None:
    condition = interpret("条纹")
    assert condition.label_weights == {"stripes": 1.0}
    assert condition.attributes == {}


def test_chinese_longest_term_wins_over_the_terms_inside_it() -> None:
    assert interpret("几何形状").label_weights == {"shapes": 1.0}
    assert interpret("几何").label_weights == pytest.approx({style: 1 / 4 for style in GEOMETRIC_STYLES})
    assert interpret("黑暗").understood == ["黑暗"]
    assert interpret("同心圆").label_weights == {"circles": 1.0}


def test_chinese_prompt_combines_styles_and_attributes() -> None:
    condition = interpret("暗色的同心圆和条纹，冷色调，很平静")
    assert condition.label_weights == pytest.approx({"circles": 0.5, "stripes": 0.5})
    assert condition.attributes["brightness"] <= 0.3
    assert condition.attributes["warmth"] <= 0.3
    assert condition.attributes["saturation"] <= 0.4


def test_chinese_bright_and_warm_prompt_targets_high_brightness_and_warmth() -> None:
    condition = interpret("明亮温暖的色块")
    assert condition.label_weights == {"color_field": 1.0}
    assert condition.attributes["brightness"] >= 0.7
    assert condition.attributes["warmth"] >= 0.7


def test_chinese_styles_the_model_lacks_are_ignored_and_its_own_labels_match_literally() -> None:
    labels = ["forest", "stripes"]
    condition = interpret_prompt("同心圆和森林，条纹", labels, {"forest": "森林"})
    assert_invariants(condition, labels)
    assert condition.label_weights == pytest.approx({"forest": 0.5, "stripes": 0.5})
    assert "同心圆" not in condition.understood


def test_chinese_prompt_about_nothing_known_sets_nothing() -> None:
    condition = interpret("你好")
    assert (condition.label_weights, condition.attributes, condition.understood) == ({}, {}, [])
    assert condition.language == "zh"


# --- English ----------------------------------------------------------------------------------


def test_dark_calm_colour_field_prompt_targets_low_brightness_and_weights_color_field_highest() -> None:
    condition = interpret("a dark, calm colour-field painting")
    assert condition.language == "en"
    assert condition.attributes["brightness"] <= 0.3
    assert top_label(condition) == "color_field"


@pytest.mark.parametrize(
    ("prompt", "label"),
    [("concentric circles", "circles"), ("stripes", "stripes"), ("paint drips", "drips"), ("random shapes", "shapes")],
)
def test_english_prompt_naming_a_style_weights_it_highest(prompt: str, label: str) -> None:
    condition = interpret(prompt)
    assert top_label(condition) == label
    assert condition.label_weights[label] > 0.5


def test_english_prompt_naming_two_styles_splits_the_weight() -> None:
    weights = interpret("stripes and circles").label_weights
    assert set(weights) >= {"stripes", "circles"}
    assert weights["stripes"] + weights["circles"] > 0.9
    assert min(weights["stripes"], weights["circles"]) > 0.2


@pytest.mark.parametrize(
    ("prompt", "attribute", "high"),
    [
        ("dark", "brightness", False),
        ("cheerful and bright", "brightness", True),
        ("vivid colours", "saturation", True),
        ("muted grey tones", "saturation", False),
        ("muted", "saturation", False),  # one anchor word alone
        ("vivid", "saturation", True),
        ("a warm orange sunset", "warmth", True),
        ("an icy blue composition", "warmth", False),
    ],
)
def test_english_prompt_about_a_colour_attribute_sets_its_target(prompt: str, attribute: str, high: bool) -> None:
    value = interpret(prompt).attributes[attribute]
    assert value >= 0.7 if high else value <= 0.3


@pytest.mark.parametrize("prompt", ["hello", "what is the weather today", "i like turtles", "", "a painting"])
def test_english_prompt_about_nothing_relevant_sets_nothing(prompt: str) -> None:
    condition = interpret(prompt)
    assert condition.attributes == {}
    assert condition.label_weights == {}


@pytest.mark.parametrize(("prompt", "label"), [("a city skyline at night", "skyline"),
                                               ("a still life with fruit and a vase", "still_life"),
                                               ("misty mountains in ink wash", "ink_landscape")])
def test_english_prompt_naming_a_figurative_style_weights_it_highest(prompt: str, label: str) -> None:
    assert top_label(interpret(prompt)) == label


def test_english_theme_words_pick_a_family_of_styles_and_are_listed_as_understood() -> None:
    condition = interpret("abstract, vivid and modern")
    assert condition.label_weights == pytest.approx({style: 1 / 6 for style in ABSTRACT_STYLES})
    assert condition.attributes["saturation"] >= 0.7
    assert {"abstract", "modern"} <= set(condition.understood)
    assert interpret("abstract art").label_weights == pytest.approx({s: 1 / 6 for s in ABSTRACT_STYLES})


def test_a_prompt_with_nothing_understood_says_so() -> None:
    assert interpret("i like turtles").understood == []


def test_english_prompt_names_no_style_when_it_only_speaks_of_colour() -> None:
    condition = interpret("a bright sunny painting with vivid colours")
    assert condition.label_weights == {}
    assert condition.attributes["brightness"] >= 0.7


def test_english_labels_the_model_lacks_are_ignored_and_labels_without_descriptions_use_their_text() -> None:
    labels = ["ocean", "forest", "city_night"]
    assert interpret_prompt("concentric circles", labels, {}).label_weights == {}
    condition = interpret_prompt("waves of the ocean", labels, {})
    assert_invariants(condition, labels)
    assert top_label(condition) == "ocean"


def test_no_labels_gives_no_weights_but_still_reads_attributes() -> None:
    condition = interpret_prompt("dark", [], {})
    assert condition.label_weights == {}
    assert condition.attributes["brightness"] <= 0.3
