"""Marshmallow schemas: request validation and the OpenAPI documents come from these."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.contract import MAX_PRIORITY, list_kinds
from shared.job_params import (
    ANALYSIS_LANGUAGES,
    ANALYSIS_MAX_SIMILAR,
    DEFAULT_RESTORATION_MODEL,
    INPAINT_METHODS,
    RESTORATION_OPERATIONS,
    UPSCALE_DEFAULT_SIDE,
    UPSCALE_MAX_SIDE,
    UPSCALE_MIN_SIDE,
    AnalysisParams,
    CreationParams,
    GanTrainingParams,
    RestorationParams,
    RestorationTrainingParams,
    StyleTransferParams,
    TrainingParams,
)
from shared.jobs import JobStatus
from shared.schedules import parse_cron
from shared.styles import list_styles
from shared.tenants import MAX_RETENTION_DAYS
from shared.webhooks import MAX_URL_LENGTH as MAX_WEBHOOK_URL_LENGTH

UPLOAD_ID = validate.Regexp(r"^[0-9a-f]{32}$", error="not an upload id")
JOB_ID = validate.Regexp(r"^[0-9a-f]{32}$", error="not a job id")
MAX_RESULT_INDEX = 1000
MODEL_NAME = validate.Regexp(r"^[a-z][a-z0-9-]{0,62}$", error="lowercase letters, digits and '-'")
MODEL_REF = validate.Regexp(r"^[a-z][a-z0-9-]{0,62}(@\d{1,9})?$", error="a model name, or name@version")
DATASET_ID = validate.Regexp(r"^(procedural|debian-images|[0-9a-f]{32})$",
                             error="'procedural', 'debian-images' or a dataset id")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


def _error_example(summary: str, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"summary": summary, "value": {"error": {"code": code, "message": message, "details": details or {}}}}


# OpenAPI examples of the one error shape, one per status the API answers with; the spec hook in
# api/__init__.py shows them on every operation that documents the status.
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: _error_example("malformed request", "malformed_request",
                        "Idempotency-Key must be 1-255 printable characters"),
    401: _error_example("no or bad API key", "unauthorized", "send 'Authorization: Bearer <api key>'"),
    403: _error_example("not allowed for this key", "forbidden", "training jobs need an admin key"),
    404: _error_example("unknown, expired or another tenant's", "not_found",
                        "no job 9a1e5b7c0d2f4e6a8b1c3d5e7f9a0b2c"),
    409: _error_example("conflict", "idempotency_conflict",
                        "this Idempotency-Key was used with a different request body"),
    413: _error_example("too large", "too_large", "the request body is larger than the server accepts"),
    415: _error_example("not an accepted image", "unsupported_image",
                        "not an accepted image format (PNG, JPEG, WebP, TIFF)"),
    422: _error_example("invalid parameters", "invalid_parameters", "the request's parameters are invalid",
                        {"fields": {"json": {"priority": ["Must be greater than or equal to 0 and less than or "
                                                          "equal to 9."]}}}),
    429: _error_example("rate limited", "rate_limited", "too many job submissions: the limit is 120 per 1 minute; "
                        "retry after Retry-After seconds", {"limit": "120 per 1 minute"}),
    503: _error_example("a dependency is down", "dependency_unavailable",
                        "Redis is unavailable; try again shortly"),
}


class RightsDeclarationSchema(Schema):
    licence = fields.String(allow_none=True)
    rights_holder = fields.String(allow_none=True)
    requester_holds_rights = fields.Boolean()


class UploadSchema(Schema):
    id = fields.String(required=True)
    sha256 = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    format = fields.String(required=True)
    bytes = fields.Integer(required=True)
    perceptual = fields.Dict(keys=fields.String(), values=fields.String(),
                             metadata={"description": "pHash and dHash (16 hex digits each)"})
    rights = fields.Nested(RightsDeclarationSchema)


class UploadFormSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"}, required=True)


class RightsDeclarationFormSchema(Schema):
    """Form fields of ``POST /v1/uploads``: who holds the rights to the image. Style references and
    images to restore need a licence and a rights holder, or requester_holds_rights=true."""

    licence = fields.String(validate=validate.Length(1, 100), metadata={
        "description": "the image's licence: an SPDX id such as CC-BY-4.0 or CC0-1.0, 'public-domain', "
                       "'proprietary', or the licence's name"})
    rights_holder = fields.String(validate=validate.Length(1, 200),
                                  metadata={"description": "who holds the copyright (a person or organisation)"})
    requester_holds_rights = fields.Boolean(load_default=False, metadata={
        "description": "true: you state that you (your tenant) hold the rights to this image"})


class UploadRequestSchema(RightsDeclarationFormSchema):
    """The whole multipart body of ``POST /v1/uploads``, for the OpenAPI document: flask-smorest
    documents one location per request body, and the upload has two (files and form)."""

    file = fields.Raw(metadata={"type": "string", "format": "binary"}, required=True)


class InputRefField(fields.Field):
    """An input: an upload or job id (32 hex digits), or a result's index (an analysis' ``inputs.result``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | int:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RESULT_INDEX:
            return value
        if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            return value
        raise ValidationError("not an upload id")


class JobRequestSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(list_kinds()))
    params = fields.Dict(keys=fields.String(), load_default=dict)
    inputs = fields.Dict(keys=fields.String(), values=InputRefField(metadata={
        "oneOf": [{"type": "string", "pattern": "^[0-9a-f]{32}$"}, {"type": "integer", "minimum": 0}]}),
        load_default=dict)
    priority = fields.Integer(load_default=0, validate=validate.Range(0, MAX_PRIORITY),
                              metadata={"description": "0..9; higher runs sooner"})
    webhook_url = fields.String(allow_none=True, metadata={
        "description": f"http(s) URL, at most {MAX_WEBHOOK_URL_LENGTH} characters, of a public host: POSTed a "
                       "signed JSON summary when the job finishes (see GET /v1/webhooks/secret)",
        "maxLength": MAX_WEBHOOK_URL_LENGTH})


# OpenAPI examples of POST /v1/jobs, at least one per job kind (upload ids come from POST /v1/uploads).
JOB_REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "style_transfer": {"summary": "a photo in a named style", "value": {
        "kind": "style_transfer", "inputs": {"content": "5f0c2a9e4b7d4c1e8f3a6b9d2e5c8f1a"},
        "params": {"style": "starry-swirl", "strength": 0.9, "max_side": 1024, "preserve_colors": False},
        "priority": 5}},
    "style_transfer_painting": {"summary": "a photo in the style of an uploaded painting", "value": {
        "kind": "style_transfer",
        "inputs": {"content": "5f0c2a9e4b7d4c1e8f3a6b9d2e5c8f1a", "style": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"},
        "params": {"strength": 0.8}}},
    "creation": {"summary": "new paintings from a trained model and a prompt", "value": {
        "kind": "creation",
        "params": {"model": "abstract", "prompt": "抽象画，色彩鲜艳，有现代感", "count": 16, "seed": 7}}},
    "restoration": {"summary": "repair a damaged, faded scan", "value": {
        "kind": "restoration",
        "inputs": {"image": "7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "mask": "3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"},
        "params": {"operations": ["inpaint", "defade", "denoise"], "auto_mask": True}}},
    "analysis": {"summary": "appreciate an uploaded painting", "value": {
        "kind": "analysis", "inputs": {"image": "7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"},
        "params": {"similar": 8, "language": "both"}}},
    "analysis_result": {"summary": "appreciate one of your own results", "value": {
        "kind": "analysis", "inputs": {"job": "9a1e2b3c4d5e6f7a8b9c0d1e2f3a4b5c", "result": 0},
        "params": {"language": "zh"}}},
    "training": {"summary": "train a GAN (admin key)", "value": {
        "kind": "training",
        "params": {"target": "gan", "model": "abstract", "dataset": "procedural", "resolution": 32,
                   "steps": 2000}}},
    "training_restoration": {"summary": "train the learned restoration model (admin key)", "value": {
        "kind": "training",
        "params": {"target": "restoration", "model": "restoration", "dataset": "procedural", "steps": 1500}}},
}


# -- per-kind parameters: the defaults are those of shared.job_params' classes -----------


def analyze_field(default: bool) -> fields.Boolean:
    return fields.Boolean(load_default=default, metadata={
        "description": "also analyse each image result: one more result per image, its analysis report "
                       "(JSON, role report, with the index of the result it describes)"})


class StyleTransferParamsSchema(StrictSchema):
    style = fields.String(validate=validate.OneOf(list_styles()),
                          metadata={"description": "a named style from GET /v1/styles"})
    strength = fields.Float(load_default=StyleTransferParams.strength, validate=validate.Range(0.0, 1.0))
    max_side = fields.Integer(load_default=StyleTransferParams.max_side, validate=validate.Range(32, 2048))
    preserve_colors = fields.Boolean(load_default=StyleTransferParams.preserve_colors)
    analyze = analyze_field(StyleTransferParams.analyze)


class StyleTransferInputsSchema(StrictSchema):
    content = fields.String(required=True, validate=UPLOAD_ID)
    style = fields.String(validate=UPLOAD_ID, metadata={"description": "upload id of any painting"})


class UpscaleField(fields.Field):
    """A side in px, or a boolean: true means UPSCALE_DEFAULT_SIDE, false means none (None)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if value is True:
            return UPSCALE_DEFAULT_SIDE
        if value is False:
            return None
        if isinstance(value, int) and UPSCALE_MIN_SIDE <= value <= UPSCALE_MAX_SIDE:
            return value
        raise ValidationError(f"a side in px from {UPSCALE_MIN_SIDE} to {UPSCALE_MAX_SIDE}, or true "
                              f"({UPSCALE_DEFAULT_SIDE} px) or false")


class CreationParamsSchema(StrictSchema):
    model = fields.String(load_default=CreationParams.model, validate=MODEL_REF,
                          metadata={"description": "name (its promoted version) or name@version"})
    style = fields.String(validate=validate.Length(1, 64), metadata={"description": "a label of the model"})
    prompt = fields.String(validate=validate.Length(1, 500),
                           metadata={"description": "free text, English or Chinese, e.g. 抽象画，色彩鲜艳，有现代感"})
    count = fields.Integer(load_default=CreationParams.count, validate=validate.Range(1, 64))
    seed = fields.Integer(validate=validate.Range(0, 2**31 - 1),
                          metadata={"description": "same seed and parameters give identical pixels; random if absent"})
    truncation = fields.Float(validate=validate.Range(0.1, 3.0), metadata={
        "description": "redraw noise entries above this; absent = none (measured: 1.0 costs quality here)"})
    upscale = UpscaleField(metadata={
        "description": f"enlarge to this side in px ({UPSCALE_MIN_SIDE}-{UPSCALE_MAX_SIDE}, at least the model's "
                       f"resolution) with the learned upscaler; true: {UPSCALE_DEFAULT_SIDE}; false or absent: as "
                       "generated",
        "oneOf": [{"type": "integer", "minimum": UPSCALE_MIN_SIDE, "maximum": UPSCALE_MAX_SIDE},
                  {"type": "boolean"}]})
    analyze = analyze_field(CreationParams.analyze)


class RestorationParamsSchema(StrictSchema):
    operations = fields.List(
        fields.String(validate=validate.OneOf(RESTORATION_OPERATIONS)),
        load_default=lambda: list(RestorationParams.operations),
        validate=validate.Length(1, len(RESTORATION_OPERATIONS)),
        metadata={"description": "subset of inpaint, defade, denoise; run as denoise -> defade -> inpaint"})
    auto_mask = fields.Boolean(load_default=RestorationParams.auto_mask, metadata={
        "description": "detect scratches, holes and stains; added to inputs.mask when one is given"})
    method = fields.String(load_default=RestorationParams.method,
                           validate=validate.OneOf(["auto", "learned", "classical"]),
                           metadata={"description": "auto: the promoted restoration model if there is one, "
                                                    "else the classical operations. A model inpaints and "
                                                    "detects damage, and de-fades where its model card's "
                                                    "learned_operations list defade; denoising is classical"})
    model = fields.String(validate=MODEL_REF, metadata={
        "description": f"a restoration model (name or name@version); default {DEFAULT_RESTORATION_MODEL!r}"})
    inpaint_method = fields.String(load_default=RestorationParams.inpaint_method,
                                   validate=validate.OneOf(INPAINT_METHODS),
                                   metadata={"description": "classical inpainting algorithm"})
    analyze = analyze_field(RestorationParams.analyze)


class RestorationInputsSchema(StrictSchema):
    image = fields.String(required=True, validate=UPLOAD_ID)
    mask = fields.String(validate=UPLOAD_ID, metadata={
        "description": "upload id of a mask of the same size; white (>= 50% grey) = damaged"})


class AnalysisParamsSchema(StrictSchema):
    similar = fields.Integer(load_default=AnalysisParams.similar, validate=validate.Range(0, ANALYSIS_MAX_SIMILAR),
                             metadata={"description": "how many of your most similar works to list"})
    language = fields.String(load_default=AnalysisParams.language, validate=validate.OneOf(ANALYSIS_LANGUAGES),
                             metadata={"description": "the description's language: en, zh or both"})


class AnalysisInputsSchema(StrictSchema):
    image = fields.String(validate=UPLOAD_ID, metadata={"description": "upload id of the work"})
    job = fields.String(validate=JOB_ID, metadata={"description": "one of your jobs; with result"})
    result = fields.Integer(validate=validate.Range(0, MAX_RESULT_INDEX),
                            metadata={"description": "the index of that job's result to analyse"})


class TrainingTargetSchema(Schema):
    """Only reads the target; the target's own schema then validates everything."""

    class Meta:
        unknown = EXCLUDE

    target = fields.String(required=True, validate=validate.OneOf(["gan", "restoration"]))


class TrainingParamsSchema(StrictSchema):
    """What every training target takes."""

    model = fields.String(required=True, validate=MODEL_NAME)
    dataset = fields.String(load_default=TrainingParams.dataset, validate=DATASET_ID)
    batch_size = fields.Integer(load_default=GanTrainingParams.batch_size, validate=validate.Range(4, 512))
    per_style = fields.Integer(load_default=GanTrainingParams.per_style, validate=validate.Range(8, 5000),
                               metadata={"description": "procedural dataset: images per style"})
    checkpoint_every = fields.Integer(load_default=TrainingParams.checkpoint_every,
                                      validate=validate.Range(1, 100_000))
    sample_every = fields.Integer(load_default=TrainingParams.sample_every, validate=validate.Range(1, 100_000))
    seed = fields.Integer(load_default=TrainingParams.seed, validate=validate.Range(0, 2**31 - 1))
    init_from = fields.String(load_default=TrainingParams.init_from, validate=validate.OneOf(["scratch", "promoted"]),
                              metadata={"description": "promoted: fine-tune the model's promoted version "
                                                       "(falls back to scratch, noted in the card, when it "
                                                       "does not fit)"})
    promote = fields.String(load_default=TrainingParams.promote, validate=validate.OneOf(["if_first", "if_better"]),
                            metadata={"description": "if_first: only a name's first version is promoted; "
                                                     "if_better: the promotion gate compares the new version "
                                                     "with the promoted one on held-out images"})
    promotion_margin = fields.Float(load_default=TrainingParams.promotion_margin, validate=validate.Range(0, 1),
                                    metadata={"description": "how much better (a fraction of the promoted "
                                                             "version's score) the gate asks for"})


class GanTrainingParamsSchema(TrainingParamsSchema):
    target = fields.String(required=True, validate=validate.Equal("gan"))
    resolution = fields.Integer(load_default=GanTrainingParams.resolution,
                                validate=validate.OneOf([32, 64, 128, 256]))
    steps = fields.Integer(load_default=GanTrainingParams.steps, validate=validate.Range(1, 200_000))
    eval_per_label = fields.Integer(load_default=GanTrainingParams.eval_per_label, validate=validate.Range(4, 200),
                                    metadata={"description": "procedural dataset: fresh images per style that "
                                                             "measure the model (and as many for the floor)"})


class RestorationTrainingParamsSchema(TrainingParamsSchema):
    target = fields.String(required=True, validate=validate.Equal("restoration"))
    model = fields.String(load_default=RestorationTrainingParams.model, validate=MODEL_NAME)
    resolution = fields.Integer(load_default=RestorationTrainingParams.resolution,
                                validate=validate.OneOf([64, 128, 256]),
                                metadata={"description": "training images are resized to this square"})
    patch = fields.Integer(load_default=RestorationTrainingParams.patch, validate=validate.OneOf([32, 48, 64, 96, 128]),
                           metadata={"description": "side of the random crops trained on"})
    batch_size = fields.Integer(load_default=RestorationTrainingParams.batch_size, validate=validate.Range(2, 256))
    steps = fields.Integer(load_default=RestorationTrainingParams.steps, validate=validate.Range(1, 200_000))
    per_style = fields.Integer(load_default=RestorationTrainingParams.per_style, validate=validate.Range(8, 5000),
                               metadata={"description": "procedural dataset: images per style"})


# -- responses ------------------------------------------------------------------------


class ProgressSchema(Schema):
    fraction = fields.Float(allow_none=True)
    stage = fields.String()
    message = fields.String()


class JobErrorSchema(Schema):
    code = fields.String()
    message = fields.String()


class ResultSchema(Schema):
    index = fields.Integer()
    url = fields.String(metadata={"description": "the PNG (or an analysis' JSON report); needs the API key"})
    download_url = fields.String(metadata={"description": "presigned S3 URL, expires"})
    sha256 = fields.String()
    width = fields.Integer(allow_none=True, metadata={"description": "null for a document"})
    height = fields.Integer(allow_none=True)
    content_type = fields.String(metadata={"description": "image/png, or application/json for a report"})
    role = fields.String(metadata={"description": "result, restored, mask, report, annotated"})
    describes = fields.Integer(metadata={"description": "an attached report: the index of the result it is about"})
    provenance_url = fields.String()


class ArtifactSchema(Schema):
    name = fields.String()
    content_type = fields.String()
    url = fields.String(metadata={"description": "needs the API key"})


class WebhookDeliverySchema(Schema):
    attempt = fields.Integer()
    at = fields.String(metadata={"description": "when the attempt started (ISO 8601)"})
    status_code = fields.Integer(metadata={"description": "the receiver's HTTP status, when it answered"})
    error = fields.String(metadata={"description": "why the attempt failed, when it did"})
    duration_ms = fields.Float()


class WebhookStateSchema(Schema):
    url = fields.String()
    state = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))
    deliveries = fields.List(fields.Nested(WebhookDeliverySchema))


class WebhookSecretSchema(Schema):
    secret = fields.String(metadata={"description": "this tenant's signing secret"})
    header = fields.String()
    scheme = fields.String()


class JobSchema(Schema):
    id = fields.String()
    kind = fields.String()
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    progress = fields.Nested(ProgressSchema)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    attempts = fields.Integer()
    error = fields.Nested(JobErrorSchema, allow_none=True)
    results = fields.List(fields.Nested(ResultSchema))
    artifacts = fields.List(fields.Nested(ArtifactSchema),
                            metadata={"description": "files a job made on the way, e.g. training sample grids"})
    params = fields.Dict()
    inputs = fields.Dict()
    priority = fields.Integer()
    results_expired_at = fields.String(allow_none=True, metadata={
        "description": "when the results were deleted under the tenant's retention policy; null while kept"})
    webhook = fields.Nested(WebhookStateSchema, allow_none=True, metadata={
        "description": "the webhook's deliveries (null without webhook_url): pending, then delivered or failed"})


class JobListQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    kind = fields.String(validate=validate.OneOf(list_kinds()))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Regexp(r"^\d{1,16}$", error="not a cursor from this API"))


class SimilarWorksQuerySchema(StrictSchema):
    upload = fields.String(required=True, validate=UPLOAD_ID, metadata={"description": "one of your uploads"})
    k = fields.Integer(load_default=AnalysisParams.similar, validate=validate.Range(1, ANALYSIS_MAX_SIMILAR))


class SimilarWorkSchema(Schema):
    kind = fields.String(metadata={"description": "upload or result"})
    id = fields.String(metadata={"description": "the upload's id, or the job's"})
    result = fields.Integer(metadata={"description": "the result's index (results only)"})
    score = fields.Float(metadata={"description": "1 for the same work: (style cosine + pHash match bonus) / 2"})
    style_similarity = fields.Float(metadata={"description": "cosine of the style vectors"})
    hash_distance = fields.Integer(metadata={"description": "pHash Hamming distance, 0-64"})


class SimilarWorksSchema(Schema):
    upload = fields.String()
    k = fields.Integer()
    indexed = fields.Integer(metadata={"description": "how many of your works the index holds"})
    works = fields.List(fields.Nested(SimilarWorkSchema))


class JobListSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class StyleSchema(Schema):
    name = fields.String()
    description = fields.String()
    thumbnail_url = fields.String()


class StyleListSchema(Schema):
    items = fields.List(fields.Nested(StyleSchema))


def field_errors(exc: ValidationError, prefix: str) -> dict[str, object]:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return {f"{prefix}.{name}": msgs for name, msgs in messages.items()}


class ModelSummarySchema(Schema):
    name = fields.String()
    public = fields.Boolean(metadata={"description": "shipped with the service, usable by every tenant"})
    read_only = fields.Boolean(metadata={"description": "one pinned version; it cannot be retrained or promoted"})
    versions = fields.List(fields.Integer())
    promoted_version = fields.Integer(allow_none=True)
    labels = fields.List(fields.String())
    resolution = fields.Integer(allow_none=True)


class ModelListSchema(Schema):
    items = fields.List(fields.Nested(ModelSummarySchema))


class ModelSchema(ModelSummarySchema):
    cards = fields.List(fields.Dict(), metadata={"description": "model card of each version"})
    promotion_history = fields.List(fields.Dict())


class PromoteRequestSchema(StrictSchema):
    version = fields.Integer(required=True, validate=validate.Range(1, 10**9))


# -- retraining schedules -----------------------------------------------------------------

SCHEDULE_NAME = validate.Regexp(r"^[a-z][a-z0-9-]{0,62}$", error="lowercase letters, digits and '-'")
# Set on the schedule itself, never inside its training parameters.
SCHEDULE_OWNED_TRAINING_FIELDS = ("target", "model", "dataset", "promote", "init_from", "promotion_margin")


class ScheduleRequestSchema(StrictSchema):
    model = fields.String(required=True, validate=MODEL_NAME,
                          metadata={"description": "a model with a promoted version; its kind sets the target"})
    dataset = fields.String(required=True, validate=DATASET_ID)
    every_s = fields.Integer(validate=validate.Range(1, 366 * 24 * 3600),
                             metadata={"description": "run every this many seconds (or give cron)"})
    cron = fields.String(validate=validate.Length(1, 120),
                         metadata={"description": "five-field cron expression, UTC (or give every_s)"})
    init_from = fields.String(load_default="promoted", validate=validate.OneOf(["promoted", "scratch"]),
                              metadata={"description": "fine-tune the promoted version, or train from scratch"})
    promotion_margin = fields.Float(load_default=TrainingParams.promotion_margin, validate=validate.Range(0, 1))
    training = fields.Dict(load_default=dict, metadata={
        "description": "training parameters as for a training job of the model's kind (steps, batch_size, ...)",
        "example": {"steps": 2000, "batch_size": 32}})
    enabled = fields.Boolean(load_default=True)

    @validates_schema
    def _one_timing(self, data: dict, **_: object) -> None:
        if ("every_s" in data) == ("cron" in data):
            raise ValidationError("give exactly one of every_s and cron", "every_s")
        if "cron" in data:
            try:
                parse_cron(data["cron"])
            except ValueError as exc:
                raise ValidationError(f"not a cron expression: {exc}", "cron") from None
        owned = sorted(set(data.get("training", {})) & set(SCHEDULE_OWNED_TRAINING_FIELDS))
        if owned:
            raise ValidationError(f"set {', '.join(owned)} on the schedule, not in training", "training")


class ScheduleSchema(Schema):
    name = fields.String()
    model = fields.String()
    dataset = fields.String()
    every_s = fields.Integer(allow_none=True)
    cron = fields.String(allow_none=True)
    enabled = fields.Boolean()
    training = fields.Dict(metadata={"description": "the training job's parameters, defaults filled in"})
    created_at = fields.Float()
    updated_at = fields.Float()
    next_run_at = fields.Float(allow_none=True)
    last_run = fields.Dict(allow_none=True, metadata={
        "description": "outcome (skipped | training | failed), reason, and for a training run its job's "
                       "status, the version it made and the promotion gate's decision"})
    runs = fields.List(fields.Dict(), metadata={"description": "recent runs, newest first"})
    last_training = fields.Dict(allow_none=True, metadata={
        "description": "the last run that started a training job, with that job's status, version and gate"})


class ScheduleListSchema(Schema):
    items = fields.List(fields.Nested(ScheduleSchema))


class DatasetFormSchema(Schema):
    licence = fields.String(metadata={"description": "required: an SPDX id such as CC-BY-4.0, or 'proprietary'"})
    name = fields.String(validate=validate.Length(1, 200))

    class Files(Schema):
        file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                                   "description": "a zip of images; one folder per label, optional"})


class DatasetAdditionFormSchema(Schema):
    label = fields.String(metadata={"description": "the label of a single image added to a labeled dataset; "
                                                   "a zip's labels come from its folders"})


class DatasetAdditionFileSchema(Schema):
    file = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "a zip laid out as for a new dataset, or one image (PNG, JPEG, WebP, TIFF)"})


class DatasetAdditionRequestSchema(DatasetAdditionFormSchema, DatasetAdditionFileSchema):
    """The whole multipart body of ``POST /v1/datasets/{id}/images``, for the OpenAPI document:
    flask-smorest documents one location per request body, and this one has two (files and form)."""


class DatasetSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    licence = fields.String()
    images = fields.Integer()
    labels = fields.Dict(keys=fields.String(), values=fields.Integer())
    version = fields.Integer(metadata={"description": "of the newest manifest; 1 when created, +1 per change"})
    manifest_sha256 = fields.String(metadata={"description": "of the newest manifest"})
    created_at = fields.Float()


class DatasetAdditionSchema(DatasetSchema):
    added = fields.Integer(metadata={"description": "images new to the dataset"})
    duplicates = fields.Integer(metadata={"description": "images skipped: already in the dataset or repeated "
                                                         "in the upload"})


class DatasetVersionSchema(Schema):
    version = fields.Integer()
    manifest_sha256 = fields.String()
    images = fields.Integer()
    created_at = fields.Float()


class DatasetVersionListSchema(Schema):
    items = fields.List(fields.Nested(DatasetVersionSchema), metadata={"description": "oldest first"})


# -- provenance: verify, the record chain, protected works ---------------------------------


class ImageFileSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "PNG, JPEG, WebP or TIFF"})


class VerifySchema(Schema):
    verdict = fields.String(validate=validate.OneOf(["ours", "ours_modified", "not_ours"]), metadata={
        "description": "ours: these are the stored bytes, or a trusted C2PA manifest of ours names the record; "
                       "ours_modified: a changed copy (re-encoded, resized, edited) identified by its watermark "
                       "or perceptual hash; not_ours: nothing ties it to a result of this service"})
    made_by_this_service = fields.Boolean()
    method = fields.String(allow_none=True, metadata={
        "description": "what identified it: c2pa, sha256, watermark or perceptual (checked in that order)"})
    own = fields.Boolean(metadata={"description": "the result belongs to the caller's tenant"})
    match = fields.Dict(allow_none=True, metadata={
        "description": "job, result and the full provenance record; only for the caller's own results"})
    evidence = fields.Dict(metadata={"description": "what each check found"})


class ChainQuerySchema(StrictSchema):
    start = fields.Integer(load_default=0, validate=validate.Range(0, 10**12),
                           metadata={"description": "first sequence number to check"})
    limit = fields.Integer(load_default=1000, validate=validate.Range(1, 5000))


class ChainCheckSchema(Schema):
    tenant = fields.String()
    length = fields.Integer(metadata={"description": "records in the tenant's chain"})
    ok = fields.Boolean(metadata={"description": "every checked record is intact, signed and linked"})
    checked = fields.Dict(metadata={"description": "start, end (exclusive) and count of the records checked"})
    next_start = fields.Integer(allow_none=True, metadata={"description": "where to continue; null at the end"})
    first_break = fields.Dict(allow_none=True, metadata={
        "description": "sequence, record_id, job_id and reason of the first bad record"})
    head = fields.Dict(allow_none=True)
    signatures = fields.String(metadata={
        "description": "checked (against the trust anchors) or unchecked (the API has no trust anchors)"})


class ProtectedWorkFormSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 300))
    rights_holder = fields.String(validate=validate.Length(1, 200))
    note = fields.String(validate=validate.Length(1, 1000))


class ProtectedWorkRequestSchema(ProtectedWorkFormSchema):
    """The whole multipart body of ``POST /v1/protected-works``, for the OpenAPI document."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "the work: PNG, JPEG, WebP or TIFF"})


class ProtectedWorkSchema(Schema):
    id = fields.String()
    title = fields.String()
    perceptual = fields.Dict(keys=fields.String(), values=fields.String())
    mirrored = fields.Dict(keys=fields.String(), values=fields.String())
    sha256 = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    rights_holder = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    added_by = fields.Dict()
    created_at = fields.Float()


class ProtectedWorkListSchema(Schema):
    items = fields.List(fields.Nested(ProtectedWorkSchema))


class RefusalQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class RefusalListSchema(Schema):
    items = fields.List(fields.Dict(), metadata={
        "description": "newest first: when, tenant, key id, job kind, input role, upload, work and distances"})


# -- tenant policies (admin) ---------------------------------------------------------------


class JsonNumber(fields.Float):
    """A JSON number: unlike ``fields.Float``, a numeric string or a boolean is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class TenantPolicyRequestSchema(StrictSchema):
    results_retention_days = JsonNumber(
        required=True, allow_none=True, validate=validate.Range(0, MAX_RETENTION_DAYS),
        metadata={"description": "delete a job's results this many days after it finished (fractions allowed); "
                                 "0 = keep forever; null = the service default"})


class TenantPolicySchema(Schema):
    tenant = fields.String()
    results_retention_days = fields.Float(allow_none=True, metadata={
        "description": "the tenant's own setting; null when the service default applies"})
    effective_results_retention_days = fields.Float(metadata={
        "description": "what applies: the tenant's setting or the service default; 0 = forever"})
