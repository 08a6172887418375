"""Request schemas: what a client may send, with defaults filled in."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from api.schemas import JobListQuerySchema, JobRequestSchema, StyleTransferInputsSchema, StyleTransferParamsSchema

UPLOAD = "0123456789abcdef0123456789abcdef"


def test_job_request_fills_defaults() -> None:
    loaded = JobRequestSchema().load({"kind": "style_transfer"})
    assert loaded == {"kind": "style_transfer", "params": {}, "inputs": {}, "priority": 0}


@pytest.mark.parametrize("body", [
    {"kind": "nope"},
    {"kind": "style_transfer", "priority": 10},
    {"kind": "style_transfer", "priority": "high"},
    {"kind": "style_transfer", "inputs": {"content": "../../etc/passwd"}},
    {"kind": "style_transfer", "webhook_url": 42},
    {},
])
def test_job_request_refuses(body: dict) -> None:
    with pytest.raises(ValidationError):
        JobRequestSchema().load(body)


def test_style_params_defaults_and_ranges() -> None:
    assert StyleTransferParamsSchema().load({"style": "rust-oil"}) == {
        "style": "rust-oil", "strength": 1.0, "max_side": 1024, "preserve_colors": False, "analyze": False}
    for bad in ({"style": "unknown"}, {"strength": -0.1}, {"max_side": 2049}, {"max_side": 16},
                {"preserve_colors": "maybe"}):
        with pytest.raises(ValidationError):
            StyleTransferParamsSchema().load(bad)


def test_style_inputs_need_content() -> None:
    assert StyleTransferInputsSchema().load({"content": UPLOAD, "style": UPLOAD})["style"] == UPLOAD
    with pytest.raises(ValidationError):
        StyleTransferInputsSchema().load({"style": UPLOAD})


def test_list_query_limits() -> None:
    assert JobListQuerySchema().load({})["limit"] == 20
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "-5"}, {"status": "done"}):
        with pytest.raises(ValidationError):
            JobListQuerySchema().load(bad)
