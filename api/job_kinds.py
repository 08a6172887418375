"""Per-kind request validation: every job kind in the shared contract has a validator here.

A validator turns the raw ``params``/``inputs`` into the normalised ones stored on the job,
or raises a 422 ApiError naming the offending fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from api.auth import Principal
from api.errors import ApiError
from api.schemas import StyleTransferInputsSchema, StyleTransferParamsSchema, field_errors
from api.services import Services
from shared.contract import list_kinds

Validator = Callable[[dict[str, Any], dict[str, Any], Principal, Services], tuple[dict[str, Any], dict[str, str]]]
_VALIDATORS: dict[str, Validator] = {}

MIN_CONTENT_SIDE = 32

# Schemas are built once: building one per request costs more than loading with it.
STYLE_TRANSFER_PARAMS = StyleTransferParamsSchema()
STYLE_TRANSFER_INPUTS = StyleTransferInputsSchema()


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
