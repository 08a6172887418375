"""Marshmallow schemas: request validation and the OpenAPI documents come from these."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.contract import MAX_PRIORITY, list_kinds
from shared.jobs import JobStatus
from shared.styles import list_styles

UPLOAD_ID = validate.Regexp(r"^[0-9a-f]{32}$", error="not an upload id")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class UploadSchema(Schema):
    id = fields.String(required=True)
    sha256 = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    format = fields.String(required=True)
    bytes = fields.Integer(required=True)


class UploadFormSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"}, required=True)


class JobRequestSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(list_kinds()))
    params = fields.Dict(keys=fields.String(), load_default=dict)
    inputs = fields.Dict(keys=fields.String(), values=fields.String(validate=UPLOAD_ID), load_default=dict)
    priority = fields.Integer(load_default=0, validate=validate.Range(0, MAX_PRIORITY),
                              metadata={"description": "0..9; higher runs sooner"})


# -- per-kind parameters ----------------------------------------------------------


class StyleTransferParamsSchema(StrictSchema):
    style = fields.String(validate=validate.OneOf(list_styles()),
                          metadata={"description": "a named style from GET /v1/styles"})
    strength = fields.Float(load_default=1.0, validate=validate.Range(0.0, 1.0))
    max_side = fields.Integer(load_default=1024, validate=validate.Range(32, 2048))
    preserve_colors = fields.Boolean(load_default=False)


class StyleTransferInputsSchema(StrictSchema):
    content = fields.String(required=True, validate=UPLOAD_ID)
    style = fields.String(validate=UPLOAD_ID, metadata={"description": "upload id of any painting"})


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
    url = fields.String(metadata={"description": "the PNG; needs the API key"})
    download_url = fields.String(metadata={"description": "presigned S3 URL, expires"})
    sha256 = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    provenance_url = fields.String()


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
    params = fields.Dict()
    inputs = fields.Dict()
    priority = fields.Integer()


class JobListQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    kind = fields.String(validate=validate.OneOf(list_kinds()))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Regexp(r"^\d{1,16}$", error="not a cursor from this API"))


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
