"""Client configuration precedence and the CLI's key=value parsing. No network."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from client.cli import params_from_assignments, parse_assignment, parse_value
from client.config import ClientConfig, ConfigError, load_config

URL = "ARTFORGE_URL"
KEY = "ARTFORGE_API_KEY"


def write_env_file(directory: Path, text: str) -> Path:
    path = directory / ".artforge" / "env"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- precedence -------------------------------------------------------------------------------


def test_environment_alone_is_enough(tmp_path: Path) -> None:
    config = load_config(env={URL: "http://api:8000", KEY: "k-env"}, cwd=tmp_path)
    assert config == ClientConfig(url="http://api:8000", api_key="k-env")


def test_environment_beats_file(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://from-file:8000\n{KEY}=k-file\n")
    config = load_config(env={URL: "http://from-env:9000", KEY: "k-env"}, cwd=tmp_path)
    assert config.url == "http://from-env:9000"
    assert config.api_key == "k-env"


def test_each_value_falls_back_to_the_file_on_its_own(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://from-file:8000\n{KEY}=k-file\n")
    config = load_config(env={KEY: "k-env"}, cwd=tmp_path)
    assert config.url == "http://from-file:8000"
    assert config.api_key == "k-env"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://from-file:8000\n{KEY}=k-file\n")
    config = load_config(env={URL: "", KEY: "  "}, cwd=tmp_path)
    assert config == ClientConfig(url="http://from-file:8000", api_key="k-file")


def test_file_is_found_in_a_parent_directory(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://parent:8000\n{KEY}=k-parent\n")
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    config = load_config(env={}, cwd=nested)
    assert config == ClientConfig(url="http://parent:8000", api_key="k-parent")


def test_nearest_file_wins_over_a_farther_one(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://far:8000\n{KEY}=k-far\n")
    near = tmp_path / "project"
    write_env_file(near, f"{URL}=http://near:8000\n{KEY}=k-near\n")
    (near / "sub").mkdir()
    assert load_config(env={}, cwd=near / "sub") == ClientConfig(url="http://near:8000", api_key="k-near")


def test_quotes_comments_and_export_are_understood(tmp_path: Path) -> None:
    write_env_file(
        tmp_path,
        "# written by make up\n"
        "\n"
        f'export {URL}="http://quoted:8000/"\n'
        f"{KEY}='k # not a comment'\n"
        "OTHER=value # trailing comment\n",
    )
    config = load_config(env={}, cwd=tmp_path)
    assert config.url == "http://quoted:8000"  # trailing slash dropped
    assert config.api_key == "k # not a comment"


def test_unquoted_value_loses_trailing_comment(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://plain:8000  # local stack\n{KEY}=k-plain\n")
    assert load_config(env={}, cwd=tmp_path).url == "http://plain:8000"


# --- errors -----------------------------------------------------------------------------------


def test_missing_everything_names_both_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(env={}, cwd=tmp_path)
    assert URL in str(raised.value)
    assert KEY in str(raised.value)


def test_missing_key_is_reported_even_when_url_is_set(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://only-url:8000\n")
    with pytest.raises(ConfigError, match=KEY):
        load_config(env={}, cwd=tmp_path)


def test_malformed_line_is_reported_with_its_number(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"{URL}=http://x:8000\nthis line has no equals sign\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_config(env={KEY: "k"}, cwd=tmp_path)


def test_url_without_scheme_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http"):
        load_config(env={URL: "127.0.0.1:8000", KEY: "k"}, cwd=tmp_path)


def test_api_key_is_not_in_repr(tmp_path: Path) -> None:
    config = load_config(env={URL: "http://api:8000", KEY: "super-secret-key"}, cwd=tmp_path)
    assert "super-secret-key" not in repr(config)
    assert "http://api:8000" in repr(config)


def test_config_is_frozen() -> None:
    config = ClientConfig(url="http://api:8000", api_key="k")
    with pytest.raises(AttributeError):
        config.api_key = "other"  # type: ignore[misc]


# --- CLI key=value parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.8", 0.8),
        ("768", 768),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ('"0.8"', "0.8"),
        ("starry-swirl", "starry-swirl"),
        ("True", "True"),
        ("", ""),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
    ],
)
def test_parse_value_is_json_if_it_parses_else_string(raw: str, expected: object) -> None:
    value = parse_value(raw)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_assignment_splits_at_the_first_equals_sign() -> None:
    assert parse_assignment("style=starry-swirl") == ("style", "starry-swirl")
    assert parse_assignment("note=a=b") == ("note", "a=b")
    assert parse_assignment("empty=") == ("empty", "")


@pytest.mark.parametrize("bad", ["no-equals", "=value", "  =value"])
def test_parse_assignment_rejects_a_missing_key(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_assignment(bad)


def test_params_from_assignments_types_values_and_keeps_the_last_repeat() -> None:
    pairs = [
        parse_assignment(text)
        for text in ["style=starry-swirl", "strength=0.5", "preserve_colors=true", "max_side=768", "strength=0.9"]
    ]
    assert params_from_assignments(pairs) == {
        "style": "starry-swirl",
        "strength": 0.9,
        "preserve_colors": True,
        "max_side": 768,
    }
