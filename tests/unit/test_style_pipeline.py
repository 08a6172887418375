"""The style pipeline as a plain function: no Celery, Redis or S3."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.job_params import StyleTransferParams
from workers.job_context import InvalidJobInput, JobCanceled, JobContext
from workers.pipelines import get_pipeline, list_pipelines
from workers.pipelines.style import fit_within


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((128, 128))


def no_progress(*_: object) -> None:
    pass


def test_style_transfer_is_registered() -> None:
    assert "style_transfer" in list_pipelines()


def test_named_style_changes_the_image_and_reports_progress(photo: Image.Image) -> None:
    stages = []
    result = get_pipeline("style_transfer")({"content": photo}, StyleTransferParams(style="bold-ink"),
                                            lambda f, s, m="": stages.append((f, s)), lambda: None,
                                            JobContext.local())
    (out,) = result.images
    assert out.size == photo.size
    assert np.abs(np.asarray(out, float) - np.asarray(photo, float)).mean() > 20
    assert result.metadata["style"] == {"mode": "named", "name": "bold-ink", "index": 1}
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and stages[-1][0] > 0.8


def test_strength_zero_gives_back_the_photo(photo: Image.Image) -> None:
    (out,) = get_pipeline("style_transfer")({"content": photo}, StyleTransferParams(style="bold-ink", strength=0.0),
                                            no_progress, lambda: None, JobContext.local()).images
    assert np.array_equal(np.asarray(out), np.asarray(photo))


def test_cancel_check_stops_the_pipeline(photo: Image.Image) -> None:
    def cancel() -> None:
        raise JobCanceled("job")

    with pytest.raises(JobCanceled):
        get_pipeline("style_transfer")({"content": photo}, StyleTransferParams(style="bold-ink"), no_progress, cancel,
                                       JobContext.local())


def test_too_small_images_are_invalid(photo: Image.Image) -> None:
    with pytest.raises(InvalidJobInput) as error:
        get_pipeline("style_transfer")({"content": photo.resize((20, 200))}, StyleTransferParams(style="bold-ink"),
                                       no_progress, lambda: None, JobContext.local())
    assert error.value.code == "image_too_small"


def test_fit_within_keeps_the_aspect_ratio(photo: Image.Image) -> None:
    assert fit_within(photo.resize((400, 200)), 100).size == (100, 50)
    assert fit_within(photo, 1000).size == photo.size
