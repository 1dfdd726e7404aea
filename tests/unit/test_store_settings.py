"""The store settings are one model: the API's and the workers' are built from the same
``PROGRESS_*`` variables, so the API's own writes (notifications, resends) keep the limits the
workers keep. ``ApiSettings.store_settings()`` once dropped ``max_stream_length``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings
from progress.settings import ProgressSettings
from progress.store import StoreSettings

STORE_ENV = {
    "PROGRESS_KEY_PREFIX": "shared",
    "PROGRESS_RETENTION_SECONDS": "600",
    "PROGRESS_MAX_STREAM_LENGTH": "77",
    "PROGRESS_STREAMS_PER_CALL": "1",
}


def api_settings(**values: object) -> ApiSettings:
    return ApiSettings(dev_tokens_enabled=True, **values)


def test_the_apis_store_settings_carry_the_length_cap_given_in_code() -> None:
    assert api_settings(max_stream_length=50).store_settings().max_stream_length == 50


def test_the_api_and_the_workers_read_the_same_store_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in STORE_ENV.items():
        monkeypatch.setenv(name, value)

    api, workers = api_settings().store_settings(), ProgressSettings().store_settings()

    assert api == workers == StoreSettings()
    assert api.model_dump() == {
        "key_prefix": "shared",
        "retention_seconds": 600,
        "max_stream_length": 77,
        "streams_per_call": 1,
    }


def test_every_store_setting_is_a_field_of_both_processes_settings() -> None:
    for settings in (ApiSettings, ProgressSettings):
        assert set(StoreSettings.model_fields) <= set(settings.model_fields)


def test_only_the_progress_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PREFIX", "other")
    monkeypatch.setenv("MAX_STREAM_LENGTH", "20")
    assert StoreSettings() == StoreSettings(key_prefix="rt", max_stream_length=10_000)


def test_a_misspelled_store_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        StoreSettings(prefix="rt")  # type: ignore[call-arg]
