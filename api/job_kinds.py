"""Per-kind request validation: every job kind in the shared contract has a validator here.

A validator turns the raw ``params``/``inputs`` into the normalised ones stored on the job,
or raises a 422 ApiError naming the offending fields.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from api.auth import Principal
from api.errors import ApiError
from api.schemas import (
    CreationParamsSchema,
    StyleTransferInputsSchema,
    StyleTransferParamsSchema,
    TrainingParamsSchema,
    field_errors,
)
from api.services import Services
from shared.contract import list_kinds
from shared.models import ModelRef, UnknownModel

Validator = Callable[[dict[str, Any], dict[str, Any], Principal, Services], tuple[dict[str, Any], dict[str, str]]]
_VALIDATORS: dict[str, Validator] = {}

MIN_CONTENT_SIDE = 32

# Schemas are built once: building one per request costs more than loading with it.
STYLE_TRANSFER_PARAMS = StyleTransferParamsSchema()
STYLE_TRANSFER_INPUTS = StyleTransferInputsSchema()
CREATION_PARAMS = CreationParamsSchema()
TRAINING_PARAMS = TrainingParamsSchema()


def validates(kind: str) -> Callable[[Validator], Validator]:
    def decorate(fn: Validator) -> Validator:
        _VALIDATORS[kind] = fn
        return fn

    return decorate


def validate_job(kind: str, params: dict[str, Any], inputs: dict[str, Any], who: Principal,
                 svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    return _VALIDATORS[kind](params, inputs, who, svc)


def check_every_kind_has_a_validator() -> None:
    missing = set(list_kinds()) - set(_VALIDATORS)
    if missing:
        raise RuntimeError(f"job kinds without a validator: {sorted(missing)}")


def _load(schema: Any, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_parameters", f"invalid {prefix}", {"fields": field_errors(exc, prefix)}) \
            from None
    return loaded


def _require_uploads(inputs: dict[str, str], who: Principal, svc: Services) -> dict[str, Any]:
    """Each input must be an upload of the caller's tenant (foreign ones look unknown)."""
    found = {}
    for role, upload_id in inputs.items():
        upload = svc.uploads.get_for_tenant(upload_id, who.tenant)
        if upload is None:
            raise ApiError(422, "unknown_upload", f"inputs.{role}: no upload {upload_id}",
                           {"fields": {f"inputs.{role}": ["no such upload"]}})
        found[role] = upload
    return found


@validates("style_transfer")
def _style_transfer(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
                    svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean_params = _load(STYLE_TRANSFER_PARAMS, params, "params")
    clean_inputs = _load(STYLE_TRANSFER_INPUTS, inputs, "inputs")
    if ("style" in clean_params) == ("style" in clean_inputs):
        raise ApiError(422, "invalid_parameters",
                       "give exactly one style: params.style (a named style) or inputs.style (an upload)",
                       {"fields": {"params.style": ["exactly one of params.style and inputs.style"]}})
    uploads = _require_uploads(clean_inputs, who, svc)
    content = uploads["content"]
    if min(content.width, content.height) < MIN_CONTENT_SIDE:
        raise ApiError(422, "image_too_small",
                       f"the content image is {content.width}x{content.height}; both sides need at least "
                       f"{MIN_CONTENT_SIDE} px", {"fields": {"inputs.content": ["image too small"]}})
    return clean_params, clean_inputs


def _no_inputs(inputs: dict[str, Any], kind: str) -> None:
    if inputs:
        raise ApiError(422, "invalid_parameters", f"{kind} jobs take no inputs",
                       {"fields": {f"inputs.{k}": ["unknown input"] for k in inputs}})


@validates("creation")
def _creation(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
              svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean = _load(CREATION_PARAMS, params, "params")
    _no_inputs(inputs, "creation")
    try:
        version, card = svc.models.resolve(ModelRef.parse(clean["model"]))
    except UnknownModel as exc:
        raise ApiError(409, "model_not_trained",
                       f"{exc}; train one first with a 'training' job (an admin key is needed)") from None
    labels = card.get("labels", [])
    if "style" in clean and clean["style"] not in labels:
        raise ApiError(422, "invalid_parameters", f"model {card['name']}@{version} has no style {clean['style']!r}",
                       {"fields": {"params.style": [f"one of {labels}"]}})
    # Pin what "latest" and "random" meant at submission, so the job is reproducible.
    clean["model"] = f"{card['name']}@{version}"
    clean.setdefault("seed", secrets.randbelow(2**31))
    return clean, {}


@validates("training")
def _training(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
              svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean = _load(TRAINING_PARAMS, params, "params")
    _no_inputs(inputs, "training")
    dataset = svc.datasets.get_for_tenant(clean["dataset"], who.tenant)
    if dataset is None:
        raise ApiError(422, "unknown_dataset", f"no dataset {clean['dataset']}",
                       {"fields": {"params.dataset": ["no such dataset"]}})
    if not dataset.licence:
        raise ApiError(422, "licence_required", "the dataset declares no licence; training on it is refused",
                       {"fields": {"params.dataset": ["no licence declared"]}})
    return clean, {}
