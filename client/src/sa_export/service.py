"""The export service's HTTP API, as this client uses it: one method per route, JSON in and out,
and every failure turned into a CommandError that says what happened (outcome.py)."""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sa_export import __version__
from sa_export.outcome import NoCsv, Refused, Unreachable, UsageError

TIMEOUT = (10, 60)  # seconds to connect, and to wait for each read of the answer
USER_AGENT = f"sa-export/{__version__}"
# Connection failures are retried for every method (nothing was sent); 429 and gateway errors
# only for reads, since a POST that reached the service may have done its work.
RETRY = Retry(
    total=3,
    connect=3,
    read=2,
    status=3,
    backoff_factor=0.5,  # waits 0, 1, 2 s between tries
    status_forcelist=(429, 502, 503, 504),
    allowed_methods=frozenset({"GET", "HEAD"}),
    respect_retry_after_header=True,
    raise_on_status=False,
)
CHUNK = 1024 * 1024


def service_url(raw: str) -> str:
    """The service's base URL from what a person typed: with or without a trailing `/api`.
    https, or plain http only on this machine (the token must not cross a network in clear)."""
    url = raw.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError("invalid_url", f"The service URL {raw!r} is not an http(s) URL like https://host.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            "invalid_url",
            f"The service URL {raw!r} is plain http: your Panoptes token would cross the network "
            "unencrypted. Use its https URL (plain http is accepted only for this machine).",
        )
    return url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Answer:
    """A start's answer: the export, and whether it is new (202) or the active one (200)."""

    export: dict[str, Any]
    created: bool


class Service:
    def __init__(self, base_url: str, token: Callable[[], str], session: requests.Session | None = None):
        self.base_url, self._token = base_url, token
        self._session = session or _session()

    # -- the routes ---------------------------------------------------------------------
    def start_export(self, project_id: str, subject_set_id: str) -> Answer:
        response = self._call("POST", "projects", project_id, "subject-sets", subject_set_id, "exports")
        return Answer(_export(response, self.base_url), response.status_code == 202)

    def rerun(self, export_id: str) -> Answer:
        response = self._call("POST", "exports", export_id, "rerun")
        return Answer(_export(response, self.base_url), response.status_code == 202)

    def export(self, export_id: str) -> dict[str, Any]:
        return _export(self._call("GET", "exports", export_id), self.base_url)

    def cancel(self, export_id: str) -> dict[str, Any]:
        return _export(self._call("POST", "exports", export_id, "cancel"), self.base_url)

    def listing(self, project_id: str) -> dict[str, Any]:
        return _json_object(self._call("GET", "projects", project_id, "exports"), self.base_url)

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, method: str, *segments: str) -> requests.Response:
        url = self.base_url + "/api/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        try:
            response = self._session.request(method, url, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise Unreachable(
                "network_error", f"Could not reach the export service at {self.base_url}: {reason(exc)}."
            ) from None
        if response.status_code >= 400:
            raise _error(response, self.base_url)
        return response


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = True  # proxies from the environment, as any command-line tool
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=RETRY)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _json_object(response: requests.Response, base_url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Unreachable(
            "not_json",
            f"The service at {base_url} answered {response.status_code} with something that is not "
            "the export service's JSON: is the URL right?",
            response.status_code,
        )
    return body


def _export(response: requests.Response, base_url: str) -> dict[str, Any]:
    """An Export resource: at least its id and status, which every command relies on."""
    body = _json_object(response, base_url)
    if not (isinstance(body.get("id"), str) and isinstance(body.get("status"), str)):
        raise Unreachable(
            "not_an_export",
            f"The service at {base_url} answered {response.status_code} with JSON that is not an export: "
            "is the URL right?",
            response.status_code,
        )
    return body


def _error(response: requests.Response, base_url: str) -> Refused | Unreachable:
    """The service's own error (`{"error": {"code", "message"}}`), or words for an answer
    that is not one (a proxy's page, another site)."""
    status = response.status_code
    kind = Refused if status < 500 else Unreachable
    try:
        error = response.json()["error"]
        return kind(str(error["code"]), str(error["message"]), status)
    except (ValueError, KeyError, TypeError):
        hint = f": is {base_url} the export service?" if status in (404, 405) else "."
        return kind(f"http_{status}", f"The service answered {status} {response.reason}{hint}", status)


def reason(exc: BaseException) -> str:
    """The root cause of a requests error in a few words ("Connection refused", "timed out"),
    not urllib3's paragraph about pools and retries."""
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found.group(1).strip() if found else type(exc).__name__


class LinkExpired(Exception):
    """The results CSV's signed link was refused (expired, or the blob is gone): read the
    export again for a fresh one."""


def download_csv(url: str, destination: str, session: requests.Session | None = None) -> int:
    """Save the results CSV behind a signed (SAS) link to `destination`; the number of bytes.
    Sent without the Panoptes token: the link is its own credential, and another host's."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))):
        raise NoCsv(
            "csv_link_refused", "The service gave a results CSV link that is not https; not followed."
        )
    plain = session or _session()
    try:
        with plain.get(url, stream=True, timeout=TIMEOUT, allow_redirects=False) as response:
            if response.status_code in (401, 403, 404, 410):
                raise LinkExpired()
            if response.status_code >= 500:
                raise Unreachable(
                    "csv_download_failed",
                    f"The results CSV could not be downloaded: its host answered {response.status_code}.",
                )
            if response.status_code != 200:
                raise NoCsv(
                    "csv_download_failed",
                    f"The results CSV could not be downloaded: its host answered {response.status_code}.",
                )
            return _write_atomically(response, destination)
    except requests.RequestException as exc:
        raise Unreachable(
            "network_error", f"The results CSV could not be downloaded: {reason(exc)}."
        ) from None


def _write_atomically(response: requests.Response, destination: str) -> int:
    """Stream into `destination`.part, then rename: a half-downloaded CSV never sits under the
    name a script waits for."""
    partial, size = destination + ".part", 0
    try:
        with open(partial, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                size += len(chunk)
        os.replace(partial, destination)
    except OSError as exc:
        raise NoCsv("csv_not_written", f"Could not write {destination}: {exc.strerror}.") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return size
