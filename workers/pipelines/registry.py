"""What a pipeline is and gives back, and the dict of every kind's pipeline.

A pipeline module registers its function with ``register_pipeline(kind)``; ``workers.pipelines``
looks them up (``get_pipeline``). A pipeline's images come back as ``Output``s: each says its
role and whether it may carry a watermark, so the store step never guesses from a name. A result
that is not a picture (an analysis report) comes back as a ``Document``: its bytes and content
type, recorded and chained like every result, but with no marks (they are for pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from PIL import Image

from workers.job_context import CancelCheck, JobContext, ProgressFn


class OutputRole(StrEnum):
    """What a result image is; stored on the job's results and in its provenance record."""

    RESULT = "result"
    RESTORED = "restored"
    MASK = "mask"
    SAMPLE_GRID = "sample_grid"
    REPORT = "report"
    ANNOTATED = "annotated"


@dataclass(frozen=True)
class Output:
    image: Image.Image
    role: OutputRole = OutputRole.RESULT
    # False where the pixels are data (a damage mask: white = damaged, exactly 0 or 255): a mark
    # would change them, so the image is stored as made and described as algorithmic media.
    watermarked: bool = True


@dataclass(frozen=True)
class Document:
    data: bytes
    content_type: str  # e.g. "application/json"; served as it is
    role: OutputRole = OutputRole.REPORT
    suffix: str = ".json"  # of the stored object's key
    describes: int | None = None  # the index of the result this document is about (an attached report)


@dataclass(frozen=True)
class PipelineResult:
    outputs: Sequence[Output | Document]
    # Facts for the provenance record: model name/version, effective parameters.
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> list[Image.Image]:
        return [output.image for output in self.outputs if isinstance(output, Output)]


class Pipeline(Protocol):
    def __call__(
        self,
        inputs: dict[str, Image.Image],
        params: Any,  # the kind's dataclass (shared.job_params)
        progress: ProgressFn,
        check_cancel: CancelCheck,
        ctx: JobContext,
    ) -> PipelineResult: ...


_PIPELINES: dict[str, Pipeline] = {}


def register_pipeline(kind: str) -> Callable[[Pipeline], Pipeline]:
    def decorate(fn: Pipeline) -> Pipeline:
        if kind in _PIPELINES:
            raise ValueError(f"pipeline for {kind!r} registered twice")
        _PIPELINES[kind] = fn
        return fn

    return decorate


def registered_pipelines() -> dict[str, Pipeline]:
    return dict(_PIPELINES)
