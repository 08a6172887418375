"""Every job kind is whole: a validator in the API, a pipeline in the workers, and one class for
its parameters whose defaults the API's schemas use. No network."""

from __future__ import annotations

import dataclasses

import pytest

from api.job_kinds import (
    CREATION_PARAMS,
    RESTORATION_PARAMS,
    STYLE_TRANSFER_PARAMS,
    TRAINING_PARAMS,
    list_validated_kinds,
)
from shared.contract import get_kind, list_kinds, parse_params
from shared.job_params import (
    TRAINING_TARGETS,
    CreationParams,
    RestorationParams,
    StyleTransferParams,
    training_params,
)
from workers.pipelines import list_pipelines


def test_every_kind_has_a_validator_and_a_pipeline() -> None:
    assert list_kinds() == list_validated_kinds() == list_pipelines()


@pytest.mark.parametrize(("schema", "params_class"), [(STYLE_TRANSFER_PARAMS, StyleTransferParams),
                                                       (CREATION_PARAMS, CreationParams),
                                                       (RESTORATION_PARAMS, RestorationParams)])
def test_the_schemas_defaults_are_the_classes(schema: object, params_class: type) -> None:
    loaded = schema.load({})  # type: ignore[attr-defined]
    assert params_class.from_dict(loaded) == params_class()


@pytest.mark.parametrize("target", sorted(TRAINING_TARGETS))
def test_each_training_targets_defaults_are_its_classes(target: str) -> None:
    required = {"target": target, "model": "landscapes"}
    loaded = TRAINING_PARAMS[target].load(required)
    assert training_params(loaded) == TRAINING_TARGETS[target](**required)


def test_creation_count_has_one_default_for_api_and_workers() -> None:
    assert CREATION_PARAMS.load({})["count"] == CreationParams().count == parse_params("creation", {}).count


def test_stored_params_read_back_as_the_same_class() -> None:
    params = RestorationParams(operations=("denoise", "inpaint"), auto_mask=True, method="learned",
                               model="restoration@2")
    stored = params.to_dict()
    assert stored["operations"] == ["denoise", "inpaint"]  # JSON has no tuples
    assert parse_params("restoration", stored) == params
    assert "model" not in RestorationParams(method="classical").to_dict()  # None is left out


def test_a_parameter_no_class_knows_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="no parameter colour"):
        parse_params("creation", {"colour": "red"})
    with pytest.raises(ValueError, match="training target"):
        parse_params("training", {"target": "sculpture", "model": "m"})


def test_params_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CreationParams().count = 9  # type: ignore[misc]


def test_each_kind_reads_its_params_with_its_own_class() -> None:
    assert isinstance(get_kind("style_transfer").params({}), StyleTransferParams)
    assert type(parse_params("training", {"target": "gan", "model": "m"})).__name__ == "GanTrainingParams"
