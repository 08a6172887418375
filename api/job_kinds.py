"""Per-kind request validation: every job kind in the shared contract has a validator here.

A validator turns the raw ``params``/``inputs`` into the normalised ones stored on the job,
or raises a 422 ApiError naming the offending fields. The stored params are built through the
kind's class in ``shared.job_params`` (``_stored``), the same class the worker reads them with.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from api.auth import Principal
from api.errors import ApiError
from api.schemas import (
    AnalysisInputsSchema,
    AnalysisParamsSchema,
    CreationParamsSchema,
    GanTrainingParamsSchema,
    RestorationInputsSchema,
    RestorationParamsSchema,
    RestorationTrainingParamsSchema,
    StyleTransferInputsSchema,
    StyleTransferParamsSchema,
    TrainingTargetSchema,
    field_errors,
)
from api.services import Services
from shared.contract import list_kinds, parse_params
from shared.images import decode_image
from shared.job_params import DEFAULT_RESTORATION_MODEL
from shared.marks.perceptual import perceptual_hashes
from shared.models import ModelRef, ResolvedModel, RetiredVersion, UnknownModel
from shared.protected_works import ProtectedWorks
from shared.uploads import Upload

log = logging.getLogger(__name__)

Validator = Callable[[dict[str, Any], dict[str, Any], Principal, Services], tuple[dict[str, Any], dict[str, str]]]
_VALIDATORS: dict[str, Validator] = {}

MIN_CONTENT_SIDE = 32

# Schemas are built once: building one per request costs more than loading with it.
STYLE_TRANSFER_PARAMS = StyleTransferParamsSchema()
STYLE_TRANSFER_INPUTS = StyleTransferInputsSchema()
CREATION_PARAMS = CreationParamsSchema()
RESTORATION_PARAMS = RestorationParamsSchema()
RESTORATION_INPUTS = RestorationInputsSchema()
ANALYSIS_PARAMS = AnalysisParamsSchema()
ANALYSIS_INPUTS = AnalysisInputsSchema()
TRAINING_TARGET = TrainingTargetSchema()
TRAINING_PARAMS = {"gan": GanTrainingParamsSchema(), "restoration": RestorationTrainingParamsSchema()}


def validates(kind: str) -> Callable[[Validator], Validator]:
    def decorate(fn: Validator) -> Validator:
        _VALIDATORS[kind] = fn
        return fn

    return decorate


def validate_job(kind: str, params: dict[str, Any], inputs: dict[str, Any], who: Principal,
                 svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean, clean_inputs = _VALIDATORS[kind](params, inputs, who, svc)
    return _stored(kind, clean), clean_inputs


def list_validated_kinds() -> list[str]:
    return sorted(_VALIDATORS)


def check_every_kind_has_a_validator() -> None:
    missing = set(list_kinds()) - set(_VALIDATORS)
    if missing:
        raise RuntimeError(f"job kinds without a validator: {sorted(missing)}")


def _stored(kind: str, clean: dict[str, Any]) -> dict[str, Any]:
    """The params as the job record stores them: through the kind's dataclass, so the worker reads
    back exactly these (a schema and its class that disagree fail here, loudly, not in a worker)."""
    return parse_params(kind, clean).to_dict()


def _load(schema: Any, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_parameters", f"invalid {prefix}", {"fields": field_errors(exc, prefix)}) \
            from None
    return loaded


def _require_uploads(inputs: dict[str, str], who: Principal, svc: Services) -> dict[str, Upload]:
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
    _require_rights(uploads, "style")
    _require_min_side(uploads["content"], "content")
    _refuse_protected_works(uploads, "style", "style_transfer", who, svc)
    return clean_params, clean_inputs


def _require_rights(uploads: dict[str, Upload], role: str) -> None:
    """Someone else's work used as a style or restored needs a declaration of who holds its rights."""
    upload = uploads.get(role)
    if upload is not None and not upload.rights.complete:
        raise ApiError(422, "rights_declaration_required",
                       f"inputs.{role}: upload {upload.id} has no rights declaration; upload it again with the "
                       "form fields licence and rights_holder, or requester_holds_rights=true",
                       {"fields": {f"inputs.{role}": ["no rights declaration"]}, "input": role, "upload": upload.id})


def _refuse_protected_works(uploads: dict[str, Upload], role: str, kind: str, who: Principal,
                            svc: Services) -> None:
    """A near-duplicate of a work on the operator's protected list is refused, and the refusal logged."""
    upload = uploads.get(role)
    works = ProtectedWorks(svc.jobs.redis)
    if upload is None or not works.any():
        return
    hashes = upload.perceptual or _hashes_of_stored(upload, svc)
    match = works.match(hashes)
    if match is None:
        return
    works.record_refusal({"tenant": who.tenant, "key_id": who.key_id, "kind": kind, "role": role,
                          "upload": upload.id, "upload_sha256": upload.sha256, "work": match.work.id,
                          "title": match.work.title, "phash_distance": match.phash_distance,
                          "dhash_distance": match.dhash_distance, "mirrored": match.mirrored})
    log.warning("refused %s input %s of tenant %s: near-duplicate of protected work %s", kind, role, who.tenant,
                match.work.id)
    raise ApiError(422, "protected_work",
                   f"inputs.{role} is a near-duplicate of a protected work ({match.work.title!r}); it cannot be "
                   "used as an input", {"fields": {f"inputs.{role}": ["near-duplicate of a protected work"]},
                                        "input": role, "work": {"id": match.work.id, "title": match.work.title}})


def _hashes_of_stored(upload: Upload, svc: Services) -> dict[str, str]:
    """Uploads made before hashes were taken at upload time: hash the stored PNG now."""
    data = svc.objects.get_bytes(svc.settings.bucket_uploads, upload.key)
    return perceptual_hashes(decode_image(data, svc.settings.max_image_pixels).image)


def _require_min_side(upload: Any, role: str) -> None:
    _require_min_size(upload.width, upload.height, role)


def _require_min_size(width: int, height: int, role: str) -> None:
    if min(width, height) < MIN_CONTENT_SIDE:
        raise ApiError(422, "image_too_small",
                       f"the {role} image is {width}x{height}; both sides need at least "
                       f"{MIN_CONTENT_SIDE} px", {"fields": {f"inputs.{role}": ["image too small"]}})


def _resolve_model(ref: str, who: Principal, svc: Services) -> ResolvedModel:
    try:
        return svc.models.for_tenant(who.tenant).resolve(ModelRef.parse(ref))
    except RetiredVersion as exc:
        raise ApiError(409, "model_version_retired", str(exc)) from None
    except UnknownModel as exc:
        raise ApiError(409, "model_not_trained",
                       f"{exc}; train one first with a 'training' job (an admin key is needed)") from None


def _require_task(card: dict[str, Any], version: int, task: str) -> None:
    """A model serves one kind of job: a restoration model cannot create, nor a GAN restore."""
    if card.get("task", "creation") != task:
        raise ApiError(422, "invalid_parameters",
                       f"model {card['name']}@{version} is a {card.get('task', 'creation')} model, not {task}",
                       {"fields": {"params.model": [f"not a {task} model"]}})


def _no_inputs(inputs: dict[str, Any], kind: str) -> None:
    if inputs:
        raise ApiError(422, "invalid_parameters", f"{kind} jobs take no inputs",
                       {"fields": {f"inputs.{k}": ["unknown input"] for k in inputs}})


@validates("creation")
def _creation(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
              svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean = _load(CREATION_PARAMS, params, "params")
    _no_inputs(inputs, "creation")
    model = _resolve_model(clean["model"], who, svc)
    version, card = model.version, model.card
    _require_task(card, version, "creation")
    labels = card.get("labels", [])
    if "style" in clean and clean["style"] not in labels:
        raise ApiError(422, "invalid_parameters", f"model {card['name']}@{version} has no style {clean['style']!r}",
                       {"fields": {"params.style": [f"one of {labels}"]}})
    upscale, resolution = clean.get("upscale"), card.get("resolution", 0)
    if upscale is not None and upscale < resolution:
        raise ApiError(422, "invalid_parameters", f"upscale {upscale} px is smaller than what model "
                       f"{card['name']}@{version} makes ({resolution} px)",
                       {"fields": {"params.upscale": [f"at least {resolution}"]}})
    if upscale is None:
        clean.pop("upscale", None)
    # Pin what "latest" and "random" meant at submission, so the job is reproducible.
    clean["model"] = model.pinned
    clean.setdefault("seed", secrets.randbelow(2**31))
    return clean, {}


@validates("restoration")
def _restoration(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
                 svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    clean = _load(RESTORATION_PARAMS, params, "params")
    clean_inputs = _load(RESTORATION_INPUTS, inputs, "inputs")
    clean["operations"] = sorted(set(clean["operations"]), key=clean["operations"].index)
    uploads = _require_uploads(clean_inputs, who, svc)
    _require_rights(uploads, "image")
    image = uploads["image"]
    _require_min_side(image, "image")
    mask = uploads.get("mask")
    if mask is not None and (mask.width, mask.height) != (image.width, image.height):
        raise ApiError(422, "mask_size_mismatch",
                       f"the mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}",
                       {"fields": {"inputs.mask": ["must have the image's size"]}})
    if "inpaint" in clean["operations"] and mask is None and not clean["auto_mask"]:
        raise ApiError(422, "mask_required", "inpainting needs to know where the damage is: give inputs.mask "
                       "(white = damaged) or set params.auto_mask", {"fields": {"inputs.mask": ["required"]}})
    # Pin the model (or its absence) now, so the job is reproducible whatever is promoted later.
    if clean["method"] != "classical":
        try:
            model = svc.models.for_tenant(who.tenant).resolve(
                ModelRef.parse(clean.get("model", DEFAULT_RESTORATION_MODEL)))
        except RetiredVersion as exc:
            raise ApiError(409, "model_version_retired", str(exc)) from None
        except UnknownModel as exc:
            if clean["method"] == "learned" or "model" in clean:
                raise ApiError(409, "model_not_trained",
                               f"{exc}; train one first with a 'training' job, target 'restoration'") from None
            clean["method"] = "classical"
        else:
            _require_task(model.card, model.version, "restoration")
            clean["model"], clean["method"] = model.pinned, "learned"
    if clean["method"] == "classical":
        clean.pop("model", None)
    _refuse_protected_works(uploads, "image", "restoration", who, svc)
    return clean, clean_inputs


@validates("analysis")
def _analysis(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
              svc: Services) -> tuple[dict[str, Any], dict[str, Any]]:
    """The work is an upload (``inputs.image``) or one of the tenant's own image results
    (``inputs.job`` + ``inputs.result``). Another tenant's upload or job is unknown: 404."""
    clean = _load(ANALYSIS_PARAMS, params, "params")
    clean_inputs = _load(ANALYSIS_INPUTS, inputs, "inputs")
    by_upload, by_result = "image" in clean_inputs, "job" in clean_inputs or "result" in clean_inputs
    if by_upload == by_result or (by_result and not {"job", "result"} <= set(clean_inputs)):
        raise ApiError(422, "invalid_parameters",
                       "give the work as inputs.image (an upload id), or as inputs.job and inputs.result "
                       "(one of your jobs and the index of its result)",
                       {"fields": {"inputs": ["exactly one of inputs.image and inputs.job + inputs.result"]}})
    if by_upload:
        upload = svc.uploads.get_for_tenant(clean_inputs["image"], who.tenant)
        if upload is None:
            raise ApiError(404, "not_found", f"no upload {clean_inputs['image']}",
                           {"fields": {"inputs.image": ["no such upload"]}})
        _require_min_side(upload, "image")
        return clean, clean_inputs
    job = svc.jobs.get_for_tenant(clean_inputs["job"], who.tenant)
    if job is None:
        raise ApiError(404, "not_found", f"no job {clean_inputs['job']}", {"fields": {"inputs.job": ["no such job"]}})
    index = clean_inputs["result"]
    result = next((r for r in job.results if r.get("index") == index), None)
    if result is None:
        raise ApiError(422, "invalid_parameters", f"job {job.id} has no result {index}",
                       {"fields": {"inputs.result": [f"the job has {len(job.results)} results"]}})
    if (result.get("content_type") or "image/png") != "image/png" or result.get("width") is None:
        raise ApiError(422, "invalid_parameters", f"result {index} of job {job.id} is not an image",
                       {"fields": {"inputs.result": ["not an image"]}})
    _require_min_size(result["width"], result["height"], "image")
    return clean, clean_inputs


@validates("training")
def _training(params: dict[str, Any], inputs: dict[str, Any], who: Principal,
              svc: Services) -> tuple[dict[str, Any], dict[str, str]]:
    target = _load(TRAINING_TARGET, params, "params")["target"]
    clean = _load(TRAINING_PARAMS[target], params, "params")
    _no_inputs(inputs, "training")
    dataset = svc.datasets.get_for_tenant(clean["dataset"], who.tenant)
    if dataset is None:
        raise ApiError(422, "unknown_dataset", f"no dataset {clean['dataset']}",
                       {"fields": {"params.dataset": ["no such dataset"]}})
    if not dataset.licence:
        raise ApiError(422, "licence_required", "the dataset declares no licence; training on it is refused",
                       {"fields": {"params.dataset": ["no licence declared"]}})
    return clean, {}
