"""App settings that wire the function app to Azurite and the stand-ins (tests, demo, bench)."""
from __future__ import annotations

CALLER_ID = "zooniverse"  # the caller the ML emulator allows in every local set-up


def offline_settings(azurite, panoptes, ml, token_key: str, **extra: str) -> dict[str, str]:
    """The required settings for an offline run, plus `extra` (e.g. faster retries in tests)."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "PANOPTES_URL": panoptes.url,
        "SUBJECT_ASSISTANT_ML_SERVICE_URL": ml.url,
        "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": CALLER_ID,
        "TOKEN_ENCRYPTION_KEY": token_key,
        **extra,
    }
