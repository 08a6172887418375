"""Log lines: JSON records with the bound request/job fields, secrets masked, safe request ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from api.observability import request_id_from
from shared.logs import (
    REDACTED,
    RedactFilter,
    bind_log_context,
    configure_logging,
    current_log_context,
    log_context,
    redact,
    reset_log_context,
)
from shared.settings import Settings

API_KEY = "af_0123456789abcdef_" + "Zq3-x_Y" * 6
S3_SECRET = "s3-secret-" + "k" * 20
PRESIGNED = ("http://127.0.0.1:9000/results/alice/job/0.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=artforge%2F20261128%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261128T000000Z"
             "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab12" * 16)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(Settings(s3_secret_key=S3_SECRET), stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_the_bound_fields(lines: io.StringIO) -> None:
    log = logging.getLogger("artforge.test")
    with log_context(request_id="req-1", tenant="alice"), log_context(job_id="job-1"):
        log.info("job %s\nstarted", "job-1")
    log.info("outside")
    inside, outside = records(lines)
    assert inside["message"] == "job job-1\nstarted" and inside["level"] == "INFO"
    assert inside["logger"] == "artforge.test" and inside["timestamp"]
    assert (inside["request_id"], inside["tenant"], inside["job_id"]) == ("req-1", "alice", "job-1")
    assert not {"request_id", "tenant", "job_id"} & set(outside)


def test_empty_context_values_are_not_bound_and_reset_restores_the_context() -> None:
    token = bind_log_context(request_id="r", tenant="")
    try:
        assert current_log_context() == {"request_id": "r"}
    finally:
        reset_log_context(token)
    assert current_log_context() == {}


def test_secrets_are_masked_in_messages_arguments_tracebacks_and_extras(lines: io.StringIO) -> None:
    log = logging.getLogger("artforge.test")
    log.warning("key %s", API_KEY)
    log.info("got %s", PRESIGNED, extra={"url": PRESIGNED, "auth": f"Bearer {API_KEY}"})
    try:
        raise RuntimeError(f"S3 refused {S3_SECRET}")
    except RuntimeError:
        log.exception("upload failed")
    text = lines.getvalue()
    for secret in (API_KEY, API_KEY.split("_", 2)[2], S3_SECRET, "ab12" * 16):
        assert secret not in text
    key_line, url_line, error_line = records(lines)
    # What an operator needs stays: the key id, the URL's path and its other parameters.
    assert key_line["message"] == f"key af_0123456789abcdef_{REDACTED}"
    assert "X-Amz-Expires=3600" in str(url_line["url"]) and f"X-Amz-Signature={REDACTED}" in str(url_line["url"])
    assert url_line["auth"] == f"Bearer {REDACTED}"
    assert "RuntimeError: S3 refused" in str(error_line["exc_info"])


@pytest.mark.parametrize(("text", "expected"), [
    (f"Authorization: Bearer {API_KEY}", f"Authorization: Bearer {REDACTED}"),
    ("https://s3/b/k?AWSAccessKeyId=A&Signature=abc%2Bdef&Expires=1", f"https://s3/b/k?AWSAccessKeyId=A&Signature="
                                                                      f"{REDACTED}&Expires=1"),
    ("x-amz-signature=deadbeef", f"x-amz-signature={REDACTED}"),
    ("X-Amz-Security-Token=tok123&a=b", f"X-Amz-Security-Token={REDACTED}&a=b"),
    ("send 'Authorization: Bearer <api key>'", "send 'Authorization: Bearer <api key>'"),
    ("af:job:123 and af_short", "af:job:123 and af_short"),
])
def test_redact_masks_only_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_configured_secret_values_are_masked_and_short_ones_ignored() -> None:
    record = logging.makeLogRecord({"msg": "secret %s, and %s", "args": (S3_SECRET, "abc")})
    RedactFilter([S3_SECRET, "abc"]).filter(record)
    assert record.getMessage() == f"secret {REDACTED}, and abc"


def test_a_malformed_logging_call_is_kept_not_raised() -> None:
    record = logging.makeLogRecord({"msg": "%s and %s", "args": ("one",)})
    assert RedactFilter().filter(record)
    assert "%s and %s" in record.getMessage()


def test_text_format_appends_the_bound_fields() -> None:
    stream = io.StringIO()
    handler = configure_logging(Settings(log_format="text"), stream=stream)
    try:
        with log_context(request_id="req-9", job_id="job-9"):
            logging.getLogger("artforge.test").warning("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("WARNING artforge.test hello request_id=req-9 job_id=job-9")


def test_configuring_again_replaces_the_handler() -> None:
    first = configure_logging(Settings(), stream=io.StringIO())
    second = configure_logging(Settings(), stream=io.StringIO())
    try:
        assert first not in logging.getLogger().handlers and second in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(second)


@pytest.mark.parametrize("sent", ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "svc.a:b_c-1", "x" * 128])
def test_a_safe_request_id_is_kept(sent: str) -> None:
    assert request_id_from(sent) == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "two words", 'quote"', "new\nline", "caf\xe9", "a/b", "{}"])
def test_an_unsafe_or_missing_request_id_is_replaced(sent: str | None) -> None:
    made = request_id_from(sent)
    assert made != sent and len(made) == 32 and made.isalnum()
    assert request_id_from(sent) != made
