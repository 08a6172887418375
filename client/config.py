"""Where the client finds the API: its base URL and the bearer key.

Precedence, per value: the environment variables ``ARTFORGE_URL`` and ``ARTFORGE_API_KEY``
win; a value they do not set comes from the nearest ``.artforge/env`` file, searched in the
working directory and then in each of its parents. The key never appears in a ``repr``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv.parser import parse_stream

URL_VARIABLE = "ARTFORGE_URL"
API_KEY_VARIABLE = "ARTFORGE_API_KEY"
ENV_FILE = Path(".artforge") / "env"


class ConfigError(Exception):
    """The client cannot be configured: a value is missing or a file is malformed."""


@dataclass(frozen=True)
class ClientConfig:
    """A complete client configuration.

    Invariants: ``url`` starts with http:// or https:// and has no trailing slash;
    ``api_key`` is non-empty and excluded from ``repr``.
    """

    url: str
    api_key: str = field(repr=False)


def load_config(env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> ClientConfig:
    """Read the configuration from ``env`` (default ``os.environ``) and the nearest env file.

    ``cwd`` (default the process's working directory) is where the file search starts.
    Raises ``ConfigError`` naming every missing value and where it was looked for.
    """
    environment = os.environ if env is None else env
    start = Path.cwd() if cwd is None else Path(cwd)
    env_file = find_env_file(start)
    from_file = parse_env_file(env_file) if env_file else {}

    url = _first_non_empty(environment.get(URL_VARIABLE), from_file.get(URL_VARIABLE))
    api_key = _first_non_empty(environment.get(API_KEY_VARIABLE), from_file.get(API_KEY_VARIABLE))

    missing = [name for name, value in ((URL_VARIABLE, url), (API_KEY_VARIABLE, api_key)) if not value]
    if missing:
        searched = f"found {env_file}" if env_file else f"no {ENV_FILE} in {start.resolve()} or its parents"
        raise ConfigError(
            f"missing {' and '.join(missing)}: set the environment variable(s) or put KEY=VALUE lines "
            f"in {ENV_FILE} ({searched})"
        )
    assert url is not None and api_key is not None
    return ClientConfig(url=_normalized_url(url), api_key=api_key)


def find_env_file(start: Path) -> Path | None:
    """The ``.artforge/env`` file in ``start`` or its nearest parent that has one, else None."""
    directory = start.resolve()
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file; raises ``ConfigError`` with the line number on a malformed line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        return parse_env_lines(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_env_lines(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as python-dotenv reads them: blank lines and ``#`` comments are skipped,
    an ``export`` prefix is allowed, a value may be quoted, and an unquoted value may end in a
    `` # comment``. A later line wins over an earlier one; a line that is not ``KEY=VALUE`` is an
    error naming its number."""
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            raise ValueError(f"line {binding.original.line}: expected KEY=VALUE, "
                             f"got {binding.original.string.strip()!r}")
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


def _first_non_empty(*candidates: str | None) -> str | None:
    """The first candidate that is set and not blank (an empty variable counts as unset)."""
    for candidate in candidates:
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _normalized_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{URL_VARIABLE} must start with http:// or https://, got {url!r}")
    return url.rstrip("/")
