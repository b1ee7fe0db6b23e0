"""Where the Panoptes token comes from: `PANOPTES_TOKEN`, or signing in to Zooniverse with
panoptes-client (the `signin` extra), username and password asked for on the terminal. Never a
command-line argument, which any user of the machine can read with `ps`."""

from __future__ import annotations

import getpass
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import requests

from sa_export.outcome import Refused, Unreachable, UsageError
from sa_export.service import is_loopback, reason

NO_TOKEN = (
    "No Panoptes token: set PANOPTES_TOKEN to your Zooniverse access token, or install the "
    "sign-in extra (pip install './client[signin]') to sign in with your username and password."
)


def token_source(
    env: Mapping[str, str],
    stdin: TextIO | None = None,
    prompts: TextIO | None = None,
    ask_password: Callable[[str], str] | None = None,
) -> Callable[[], str]:
    """A function that gives the bearer token for the next request. Asks on `stdin` (and
    `prompts`, stderr by default, so that stdout stays the command's output) when it must."""
    stdin, prompts = stdin or sys.stdin, prompts or sys.stderr
    token = env.get("PANOPTES_TOKEN", "").strip()
    if token:
        return lambda: token
    try:
        from panoptes_client.panoptes import Panoptes, PanoptesAPIException
    except ImportError:
        raise UsageError("no_token", NO_TOKEN) from None
    endpoint = env.get("PANOPTES_ENDPOINT") or "https://www.zooniverse.org"
    if not endpoint.startswith("https://") and not is_loopback(
        urllib.parse.urlsplit(endpoint).hostname or ""
    ):
        raise UsageError("invalid_url", f"PANOPTES_ENDPOINT {endpoint!r} is not https: not signing in there.")
    username = env.get("PANOPTES_USERNAME") or ""
    password = env.get("PANOPTES_PASSWORD") or ""
    if not (username and password):
        if not stdin.isatty():
            raise UsageError(
                "no_token",
                "No Panoptes token: set PANOPTES_TOKEN (there is no terminal to sign in from).",
            )
        prompts.write(f"Sign in to Zooniverse ({endpoint}).\n")
        if not username:
            prompts.write("Username: ")
            prompts.flush()
            username = stdin.readline().strip()
        if not password:
            password = (ask_password or getpass.getpass)("Password: ")

    def signed_in(action: Callable[[], Any]) -> Any:
        """panoptes-client's failures in words (outcome.py), whether signing in or refreshing."""
        try:
            result = action()
        except PanoptesAPIException as exc:
            raise Refused("sign_in_failed", f"Zooniverse did not sign you in: {_words(exc)}.") from None
        except (KeyError, ValueError):  # no CSRF header, or no JSON, where panoptes-client expects one
            raise Unreachable(
                "sign_in_failed",
                "Zooniverse's sign-in answered in a way panoptes-client does not understand.",
            ) from None
        except requests.RequestException as exc:
            raise Unreachable(
                "network_error", f"Could not reach Zooniverse to sign in: {reason(exc)}."
            ) from None
        if result is None:  # panoptes-client gives None when it is not signed in
            raise Refused("sign_in_failed", "Zooniverse did not sign you in.")
        return result

    client = signed_in(lambda: Panoptes(endpoint=endpoint.rstrip("/"), username=username, password=password))
    signed_in(client.get_bearer_token)

    def bearer() -> str:
        # panoptes-client refreshes the token when two minutes or less are left: a wait can outlast it.
        return str(signed_in(client.get_bearer_token))

    return bearer


def _words(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text or "login failed"
