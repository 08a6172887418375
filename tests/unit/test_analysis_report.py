"""The whole report of a work, its descriptions and its annotated picture."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from PIL import Image

from workers.analysis.annotate import STRIP_HEIGHT, annotate
from workers.analysis.report import analyse, build_report


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    from skimage import data

    images = {"coffee": Image.fromarray(data.coffee()), "astronaut": Image.fromarray(data.astronaut())}
    return {name: build_report(analyse(image)) for name, image in images.items()}


def field(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_the_report_holds_every_section_and_is_json(reports: dict[str, dict[str, Any]]) -> None:
    report = reports["coffee"]
    assert json.loads(json.dumps(report)) == report
    assert 5 <= len(report["palette"]) <= 8
    assert {"brightness", "saturation", "warmth", "contrast", "colourfulness", "harmony"} <= set(report["colour"])
    assert {"centre_of_mass", "balance", "rule_of_thirds", "symmetry", "edge_density", "negative_space",
            "orientations"} <= set(report["composition"])
    assert {"local_contrast", "coherence", "surface"} <= set(report["texture"])
    assert len(report["style"]["named"]) == 26 and len(report["style"]["top"]) == 5
    assert report["style"]["top"][0]["score"] == max(report["style"]["named"].values())


def test_every_sentence_rests_on_report_fields(reports: dict[str, dict[str, Any]]) -> None:
    for report in reports.values():
        sentences = report["description"]["sentences"]
        assert len(sentences) >= 6
        for sentence in sentences:
            assert sentence["fields"] and sentence["en"] and sentence["zh"]
            for path in sentence["fields"]:
                field(report, path)  # raises where a sentence names a field the report lacks
        assert report["description"]["en"] == " ".join(s["en"] for s in sentences)
        assert re.search(r"[\u4e00-\u9fff]", report["description"]["zh"])


def test_numbers_in_the_words_are_the_reports(reports: dict[str, dict[str, Any]]) -> None:
    report = reports["astronaut"]
    lead = report["palette"][0]
    first = report["description"]["sentences"][0]
    assert lead["name_en"] in first["en"] and lead["name_zh"] in first["zh"]
    assert re.search(r"\((\d+)%\)", first["en"])
    assert report["style"]["top"][0]["name"] in report["description"]["en"]


def test_different_works_are_described_differently(reports: dict[str, dict[str, Any]]) -> None:
    a, b = (reports[name]["description"]["sentences"] for name in ("coffee", "astronaut"))
    differing = sum(x["en"] != y["en"] for x, y in zip(a, b, strict=False))
    assert differing >= len(a) // 2


def test_one_language_only(reports: dict[str, dict[str, Any]]) -> None:
    from workers.analysis.describe import describe

    english = describe(reports["coffee"], "en")
    assert "en" in english and "zh" not in english and "zh" not in english["sentences"][0]
    chinese = describe(reports["coffee"], "zh")
    assert "zh" in chinese and "en" not in chinese


def test_the_annotated_picture_has_the_work_and_a_palette_strip(reports: dict[str, dict[str, Any]]) -> None:
    from skimage import data

    image = Image.fromarray(data.coffee())
    annotated = annotate(image, reports["coffee"])
    assert annotated.width == image.width and annotated.height == image.height + STRIP_HEIGHT
    lead = reports["coffee"]["palette"][0]["hex"]
    strip_pixel = annotated.getpixel((2, image.height + STRIP_HEIGHT - 2))
    assert "#{:02x}{:02x}{:02x}".format(*strip_pixel) == lead


def disc_at(x: float, y: float) -> Image.Image:
    from PIL import ImageDraw

    image = Image.new("RGB", (300, 300), (240, 236, 225))
    ImageDraw.Draw(image).ellipse([x * 300 - 30, y * 300 - 30, x * 300 + 30, y * 300 + 30], fill=(30, 60, 170))
    return image


def test_the_words_follow_the_measurements() -> None:
    off = build_report(analyse(disc_at(0.2, 0.25)))
    assert off["composition"]["balance"] < 0.85
    assert "toward the upper left" in off["description"]["en"] and "左上方" in off["description"]["zh"]
    centred = build_report(analyse(disc_at(0.5, 0.5)))
    assert "near the centre, and the whole is well balanced" in centred["description"]["en"]
    assert "smooth, with little visible brushwork" in centred["description"]["en"]
    assert "ivory" in centred["description"]["en"] or "cream" in centred["description"]["en"]
    grey = build_report(analyse(Image.new("RGB", (64, 64), (128, 128, 128))))
    assert "monochrome of greys" in grey["description"]["en"] and grey["colour"]["saturation"] == 0.0
