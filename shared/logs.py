"""Logging, configured in one place: ``configure_logging(settings)``.

Every record becomes one line on stderr: JSON by default (``timestamp``, ``level``, ``logger``,
``message``, plus ``request_id``, ``tenant`` and ``job_id`` where known), or plain text for
humans (``ARTFORGE_LOG_FORMAT=text``). The API binds the request's id and tenant, a worker binds
the job's id, tenant and the request id the job was submitted with, using ``log_context``.

``RedactFilter`` is the last line of defence against secrets in logs: it masks API keys
(``af_<key id>_<secret>``), bearer tokens, presigned-URL signatures and the configured secret
values in the message, the traceback and every string field of a record.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from shared.settings import Settings

CONTEXT_FIELDS = ("request_id", "tenant", "job_id")
REDACTED = "[REDACTED]"
# Shorter configured values are not masked: they would mask ordinary words.
MIN_SECRET_LENGTH = 8
# A LogRecord's own attributes that never carry caller text (the rest are masked).
_PLAIN_ATTRS = set(vars(logging.makeLogRecord({}))) - {"msg", "exc_text", "stack_info"}

_context: ContextVar[dict[str, str] | None] = ContextVar("artforge_log_context", default=None)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE), r"\1" + REDACTED),
    # API keys: keep the key id (not a secret, and what an operator needs), mask the secret.
    (re.compile(r"\b(af_[A-Za-z0-9]+_)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),
    # Presigned URLs (SigV4 and V2) and temporary credentials in query strings.
    (re.compile(r"((?:X-Amz-)?Signature|X-Amz-Security-Token)=[^&\s\"'<>]+", re.IGNORECASE), r"\1=" + REDACTED),
]


# -- context ------------------------------------------------------------------------------


def current_log_context() -> dict[str, str]:
    return dict(_context.get() or {})


def bind_log_context(**fields: str) -> Token[dict[str, str] | None]:
    """Add fields (empty values are skipped) to every record logged in this context from now on.
    Pass the token to ``reset_log_context`` to drop them again."""
    return _context.set({**current_log_context(), **{k: v for k, v in fields.items() if v}})


def reset_log_context(token: Token[dict[str, str] | None]) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        reset_log_context(token)


class ContextFilter(logging.Filter):
    """Copies the bound request/job fields onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_log_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# -- redaction ------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Masks secrets in the message, the formatted traceback and every string field of a record."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = record.getMessage()
        except Exception:  # a malformed logging call: keep what it passed rather than raise
            record.msg = f"{record.msg} {record.args!r}"
        record.args = None
        if record.exc_info:
            # Formatted here so the traceback's text is masked too; formatters then use exc_text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in _PLAIN_ATTRS:
                setattr(record, name, redact(value, self.secrets))
        return True


# -- formatters and setup ------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """``time level logger message`` followed by the bound fields as ``name=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        bound = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        if not bound:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} {bound}{newline}{rest}"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def configured_secrets(settings: Settings) -> list[str]:
    return [settings.s3_secret_key, settings.watermark_key]


def configure_logging(settings: Settings, level: int | str = logging.INFO, stream: IO[str] | None = None
                      ) -> logging.Handler:
    """Send every record through one handler on the root logger; calling it again replaces that
    handler (handlers installed by others, pytest's say, stay)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if settings.log_format == "text" else json_formatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter(configured_secrets(settings)))
    handler.set_name("artforge")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "artforge"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings become records too, so they reach the same lines (and the same redaction).
    logging.captureWarnings(True)
    return handler

