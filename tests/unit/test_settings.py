"""Settings from ARTFORGE_* variables: typed, checked, and errors that name the variable. No network."""

from __future__ import annotations

import pytest

from shared.settings import Settings, SettingsError


def test_values_are_read_as_their_settings_types() -> None:
    settings = Settings.from_env({"ARTFORGE_S3_SECURE": "yes", "ARTFORGE_LEASE_S": "12",
                                  "ARTFORGE_RESULTS_EXPIRE_DAYS": "0.5", "ARTFORGE_DEVICE": "cpu"})
    assert (settings.s3_secure, settings.lease_s, settings.results_expire_days, settings.device) == (
        True, 12, 0.5, "cpu")


@pytest.mark.parametrize("raw", ["ture", "2", "enabled"])
def test_a_misspelt_boolean_is_an_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"ARTFORGE_S3_SECURE='{raw}'"):
        Settings.from_env({"ARTFORGE_S3_SECURE": raw})


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"ARTFORGE_LEASE_S": "thirty", "ARTFORGE_S3_RETRY_BACKOFF_S": "fast"})
    assert "ARTFORGE_LEASE_S='thirty'" in str(raised.value)
    assert "ARTFORGE_S3_RETRY_BACKOFF_S='fast'" in str(raised.value)


def test_the_process_environment_is_read_unless_a_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTFORGE_LEASE_S", "77")
    assert Settings.from_env().lease_s == Settings().lease_s == 77
    assert Settings.from_env({}).lease_s == 30  # the mapping alone: its default


def test_variables_of_other_programs_are_ignored() -> None:
    assert Settings.from_env({"ARTFORGE_URL": "http://x", "ARTFORGE_API_KEY": "k"}) == Settings.from_env({})


def test_overrides_win_and_a_misnamed_one_is_refused() -> None:
    assert Settings.from_env({"ARTFORGE_LEASE_S": "12"}, lease_s=5).lease_s == 5
    with pytest.raises(TypeError, match="lease_seconds"):
        Settings.from_env({}, lease_seconds=5)


def test_settings_are_frozen_hashable_and_keep_secrets_out_of_repr() -> None:
    settings = Settings.from_env({"ARTFORGE_S3_SECRET_KEY": "hunter2-secret", "ARTFORGE_WEBHOOK_SECRET": "w-secret"})
    assert "hunter2-secret" not in repr(settings) and "w-secret" not in repr(settings)
    assert settings.s3_secret_key == "hunter2-secret"
    assert hash(settings) == hash(Settings.from_env({"ARTFORGE_S3_SECRET_KEY": "hunter2-secret",
                                                     "ARTFORGE_WEBHOOK_SECRET": "w-secret"}))
    with pytest.raises(ValueError, match="frozen"):
        settings.lease_s = 1  # type: ignore[misc]
