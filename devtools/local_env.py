"""App settings that wire the function app to Azurite and the stand-ins (tests, demo, bench,
`make run`)."""

from __future__ import annotations

from cryptography.fernet import Fernet

CALLER_ID = "zooniverse"  # the caller the ML emulator allows in every local set-up
OAUTH_CLIENT_ID = "local-export-page"  # the Panoptes stand-in accepts any application id


def offline_settings(azurite, panoptes, ml, token_key: str, **extra: str) -> dict[str, str]:
    """The required settings for an offline run, plus `extra` (e.g. faster retries in tests)."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "PANOPTES_URL": panoptes.url,
        "SUBJECT_ASSISTANT_ML_SERVICE_URL": ml.url,
        "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": CALLER_ID,
        "TOKEN_ENCRYPTION_KEY": token_key,
        "PANOPTES_OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
        **extra,
    }


def new_token_key() -> str:
    """A fresh TOKEN_ENCRYPTION_KEY for a local run (what operators make with the same call)."""
    return Fernet.generate_key().decode()
