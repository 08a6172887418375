"""Each job kind's parameters as one frozen dataclass: the defaults are written here and nowhere else.

The API's schemas (``api.schemas``) take their defaults from these classes, and each validator
(``api.job_kinds``) ends by building its kind's class, so what a job record stores is what
``from_dict`` reads back. The worker parses the stored dict with ``parse_params(kind, params)``
before its pipeline sees it; a key no class knows is an error, never silently dropped.

Bounds (``count`` 1..64 and the like) are request validation and live in the schemas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeAlias

RESTORATION_OPERATIONS = ("inpaint", "defade", "denoise")
InpaintMethod = Literal["telea", "navier_stokes", "biharmonic"]
INPAINT_METHODS: tuple[InpaintMethod, ...] = ("telea", "navier_stokes", "biharmonic")
# The model restoration jobs (and restoration trainings) use when none is named.
DEFAULT_RESTORATION_MODEL = "restoration"
# The model creation jobs use when none is named.
DEFAULT_CREATION_MODEL = "abstract"
# Creation's ``upscale``: the sides it may ask for, and what ``true`` means.
UPSCALE_MIN_SIDE, UPSCALE_MAX_SIDE, UPSCALE_DEFAULT_SIDE = 64, 1024, 256


class _Params:
    """``from_dict`` / ``to_dict`` for the frozen dataclasses below. Lists become tuples (the
    classes are immutable and hashable); ``to_dict`` leaves out what is None, as the API does."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameter {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class StyleTransferParams(_Params):
    style: str | None = None  # a named style; None: the style is the ``style`` input
    strength: float = 1.0
    max_side: int = 1024
    preserve_colors: bool = False
    analyze: bool = False  # attach an analysis report (JSON) to each image result


@dataclass(frozen=True, kw_only=True)
class CreationParams(_Params):
    model: str = DEFAULT_CREATION_MODEL  # pinned to name@version at submission
    style: str | None = None
    prompt: str | None = None
    count: int = 4
    seed: int | None = None  # drawn at submission when absent, so a stored job always has one
    truncation: float | None = None
    upscale: int | None = None  # the side to enlarge to, in px, with the learned upscaler; None: as generated
    analyze: bool = False  # attach an analysis report (JSON) to each image result

    @property
    def fixed_seed(self) -> int:
        if self.seed is None:
            raise ValueError("a creation job's seed is set at submission")
        return self.seed


@dataclass(frozen=True, kw_only=True)
class RestorationParams(_Params):
    operations: tuple[str, ...] = ("inpaint",)
    auto_mask: bool = False
    # "auto" is resolved at submission: "learned" with the model pinned, or "classical".
    method: Literal["auto", "learned", "classical"] = "auto"
    model: str | None = None
    inpaint_method: InpaintMethod = "telea"
    analyze: bool = False  # attach an analysis report (JSON) to the restored image


AnalysisLanguage = Literal["en", "zh", "both"]
ANALYSIS_LANGUAGES: tuple[AnalysisLanguage, ...] = ("en", "zh", "both")
ANALYSIS_MAX_SIMILAR = 50


@dataclass(frozen=True, kw_only=True)
class AnalysisParams(_Params):
    similar: int = 8  # how many of the tenant's most similar works the report lists (0..50)
    language: AnalysisLanguage = "both"


@dataclass(frozen=True, kw_only=True)
class TrainingParams(_Params):
    """What every training target takes; each target's class adds its own and its defaults."""

    target: str
    model: str
    dataset: str = "procedural"
    batch_size: int = 32
    per_style: int = 300  # the procedural dataset: images per style
    checkpoint_every: int = 200
    sample_every: int = 250
    seed: int = 0
    init_from: Literal["scratch", "promoted"] = "scratch"
    promote: Literal["if_first", "if_better"] = "if_first"
    promotion_margin: float = 0.02
    resolution: int  # each target's class sets its default
    steps: int
    # Set on jobs a retraining schedule started: the schedule's name.
    schedule: str | None = None


@dataclass(frozen=True, kw_only=True)
class GanTrainingParams(TrainingParams):
    target: Literal["gan"] = "gan"
    resolution: int = 64
    steps: int = 2000
    # The procedural dataset: fresh images per style the model is measured against (and as many
    # again for the real-vs-real floor); 36 x 9 styles = 324 a side.
    eval_per_label: int = 36


@dataclass(frozen=True, kw_only=True)
class RestorationTrainingParams(TrainingParams):
    target: Literal["restoration"] = "restoration"
    model: str = DEFAULT_RESTORATION_MODEL
    resolution: int = 128  # training images are resized to this square
    patch: int = 64  # side of the random crops trained on
    batch_size: int = 16
    steps: int = 1500
    per_style: int = 32


TRAINING_TARGETS: dict[str, type[TrainingParams]] = {"gan": GanTrainingParams,
                                                     "restoration": RestorationTrainingParams}


def training_params(raw: Mapping[str, Any]) -> TrainingParams:
    """A training job's parameters, as the class of its ``target``."""
    target = raw.get("target")
    if target not in TRAINING_TARGETS:
        raise ValueError(f"training target must be one of {sorted(TRAINING_TARGETS)}, got {target!r}")
    return TRAINING_TARGETS[target].from_dict(raw)


JobParams: TypeAlias = StyleTransferParams | CreationParams | RestorationParams | AnalysisParams | TrainingParams
# How a job kind reads its stored parameters (``shared.contract.JobKind.params``).
ParamsParser: TypeAlias = Callable[[Mapping[str, Any]], JobParams]
