"""The page feature's settings, each declared once (see shared/settings.py for how)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re

from shared.settings import AppSettings, float_range, load, setting


def oauth_client_id(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", value):
        raise ValueError(
            "must be the application id of a Panoptes OAuth application (letters, digits, '-' and '_')"
        )
    return value


@dataclasses.dataclass(frozen=True)
class PageSettings(AppSettings):
    panoptes_oauth_client_id: str = setting(
        "PANOPTES_OAUTH_CLIENT_ID",
        oauth_client_id,
        None,
        "Application id of the Panoptes OAuth application the page signs in with (implicit "
        "grant; its redirect URI is this app's root URL, e.g. https://<app host>/). See "
        "docs/DEPLOY.md for how to register it.",
    )
    page_refresh_seconds: float = setting(
        "PAGE_REFRESH_SECONDS",
        float_range(0.05, 600),
        "3",
        "How often the page refreshes its subject sets while an export is active (every 10/3 of "
        "that after 20 refreshes without a change, 5/3 after a failed one). The tests set it low "
        "so the page shows a change at once.",
    )


@functools.lru_cache(maxsize=1)
def get_page_settings() -> PageSettings:
    """Read once. Raises SettingsError naming bad settings."""
    return load(PageSettings, os.environ)
