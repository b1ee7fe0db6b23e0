"""Panoptes adapter: the few API calls the service makes (transport: shared/outbound.py).

Why not panoptes-client: its "current client" is a thread-local global (a token set by one
invocation could be seen by another on the Functions thread pool), its constructor reads
PANOPTES_* variables and may log in, and `SubjectSet.subjects` sends one request per subject.
Here every call takes the user's token explicitly and subjects come 100 a page.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import copy
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import cachetools

from shared.outbound import OutboundError, OutboundHttp
from shared.telemetry import traced

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Panoptes' cap: larger page sizes are silently clamped
# Pages read one by one past the page count page 1 announced (the set grew while it was read).
# Bounded so that a malformed answer can never keep a worker reading forever.
MAX_EXTRA_PAGES = 100
ACCEPT = "application/vnd.api+json; version=1"


class PanoptesError(Exception):
    pass


class PanoptesUnauthorized(PanoptesError):
    """The token was rejected (missing, invalid or expired)."""


class PanoptesNotFound(PanoptesError):
    pass


class PanoptesUnavailable(PanoptesError):
    """Network error, timeout, 5xx, 429 or a malformed answer, after retries."""


@dataclass(frozen=True)
class PanoptesUser:
    id: str
    login: str
    display_name: str


@dataclass(frozen=True)
class SubjectPage:
    subjects: list[dict]
    page: int
    page_count: int
    count: int
    next_page: int | None


class PanoptesClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 0.5,
        http: OutboundHttp | None = None,
        sleep: Callable[[float], None] = time.sleep,
        patience: float | None = None,
    ):
        self.api = base_url.rstrip("/") + "/api"
        self.retries = retries
        self.backoff = backoff
        # Most a call may sleep between retries in total (None: as long as its retries take).
        self.patience = patience
        # One pool serves every user; it keeps no state between calls (see shared/outbound.py).
        self._http = traced(http or OutboundHttp(pool_size=64, timeout=timeout), "Panoptes", ("page",))
        self._sleep = sleep

    def with_patience(self, seconds: float) -> PanoptesClient:
        """The same client (same pool) whose calls sleep at most `seconds` in total between
        retries: for checks made while an HTTP caller waits, which must not be held for a
        Retry-After of minutes (the caller gets 502 panoptes_unavailable instead)."""
        patient = copy.copy(self)
        patient.patience = seconds
        return patient

    # -- transport ---------------------------------------------------------------------
    def _get(self, path: str, token: str | None, params: dict | None = None) -> dict:
        headers = {"Accept": ACCEPT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        attempt, slept = 0, 0.0
        while True:
            attempt += 1
            retry_after = None
            try:
                response = self._http.request("GET", self.api + path, params=params, headers=headers)
            except OutboundError as exc:
                problem = exc.kind
            else:
                status = response.status
                if status == 401:
                    raise PanoptesUnauthorized("Panoptes rejected the access token")
                if status == 404:
                    raise PanoptesNotFound(path)
                if status == 200:
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    if isinstance(body, dict):
                        return body
                    problem = "malformed JSON"
                else:
                    problem = f"HTTP {status}"
                    if status == 429 or status == 503:
                        retry_after = _retry_after(response.headers.get("Retry-After"))
                    elif status < 500:
                        raise PanoptesError(f"Panoptes answered {status} for {path}")
            if attempt > self.retries:
                raise PanoptesUnavailable(f"Panoptes unavailable ({problem}) for {path}")
            delay = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
            delay = min(delay, 30) * (1 + random.random() * 0.25)
            if self.patience is not None and slept + delay > self.patience:
                raise PanoptesUnavailable(
                    f"Panoptes unavailable ({problem}) for {path}; not waiting {delay:.1f} s more"
                )
            self._sleep(delay)
            slept += delay

    # -- identity and access -----------------------------------------------------------
    def me(self, token: str) -> PanoptesUser:
        users = self._get("/me", token).get("users")
        if (
            not isinstance(users, list)
            or not users
            or not isinstance(users[0], dict)
            or not str(users[0].get("id", "")).isdigit()
        ):
            raise PanoptesUnavailable("Panoptes /me answered without a user")
        user = users[0]
        login = user.get("login")
        login = login if isinstance(login, str) else ""
        display = user.get("display_name")
        display = display if isinstance(display, str) and display else login
        return PanoptesUser(str(user["id"]), login[:100], display[:100])

    def project_roles(self, token: str, project_id: str, user_id: str) -> set[str]:
        body = self._get("/project_roles", token, {"project_id": project_id, "user_id": user_id})
        roles: set[str] = set()
        for entry in body.get("project_roles") or []:
            if isinstance(entry, dict) and isinstance(entry.get("roles"), list):
                roles.update(r for r in entry["roles"] if isinstance(r, str))
        return roles

    def _records(self, path: str, token: str, params: dict, key: str) -> Iterator[dict]:
        """Every record of a paged listing (100 a page), page after page while Panoptes names a
        later next page; records that are not objects with a numeric id are left out."""
        page: int | None = 1
        while page:
            body = self._get(path, token, {**params, "page_size": PAGE_SIZE, "page": page})
            for item in body.get(key) or []:
                if isinstance(item, dict) and str(item.get("id", "")).isdigit():
                    yield item
            following = _next_page(body, key)
            page = following if following is not None and following > page else None

    def roles_of_user(self, token: str, user_id: str) -> Iterator[tuple[str, list[str]]]:
        """(project id, roles) of every project role the user holds (all pages)."""
        for entry in self._records("/project_roles", token, {"user_id": user_id}, "project_roles"):
            links, roles = entry.get("links"), entry.get("roles")
            project_id = str(links.get("project", "")) if isinstance(links, dict) else ""
            if project_id.isdigit() and isinstance(roles, list):
                yield project_id, [r for r in roles if isinstance(r, str)]

    def projects(self, token: str, project_ids: list[str]) -> Iterator[dict]:
        """The projects with these ids that the token may see (100 ids a request, all pages)."""
        for start in range(0, len(project_ids), PAGE_SIZE):
            ids = ",".join(project_ids[start : start + PAGE_SIZE])
            yield from self._records("/projects", token, {"id": ids}, "projects")

    def subject_set(self, token: str | None, subject_set_id: str) -> dict | None:
        try:
            body = self._get(f"/subject_sets/{subject_set_id}", token)
        except PanoptesNotFound:
            return None
        sets = body.get("subject_sets")
        if not isinstance(sets, list) or not sets or not isinstance(sets[0], dict):
            return None
        return sets[0]

    def subject_sets_of_project(self, token: str, project_id: str) -> Iterator[dict]:
        return self._records("/subject_sets", token, {"project_id": project_id}, "subject_sets")

    # -- subjects ----------------------------------------------------------------------
    def subjects_page(self, token: str | None, subject_set_id: str, page: int) -> SubjectPage:
        body = self._get(
            "/subjects", token, {"subject_set_id": subject_set_id, "page_size": PAGE_SIZE, "page": page}
        )
        subjects = body.get("subjects")
        if not isinstance(subjects, list):
            raise PanoptesUnavailable("Panoptes /subjects answered without a subjects list")
        meta = _meta(body, "subjects")
        return SubjectPage(
            subjects=[s for s in subjects if isinstance(s, dict)],
            page=page,
            page_count=_int(meta.get("page_count"), 1),
            count=_int(meta.get("count"), 0),
            next_page=_next_page(body, "subjects"),
        )

    def iter_subject_pages(
        self,
        token: str | None,
        subject_set_id: str,
        concurrency: int,
        on_first: Callable[[SubjectPage], None] | None = None,
        expected_count: int | None = None,
    ) -> Generator[SubjectPage, None, None]:
        """Every page of the set, in order, `concurrency` requests at a time (at most
        4 x concurrency pages held, so a slow consumer does not stall the requests at once).

        Page 1 tells the page count. `expected_count` (the set's size when the export was
        requested) lets the next pages go out together with page 1 instead of after it; page 1's
        answer stays the authority, so a wrong guess costs at most 4 x concurrency spare requests
        (answers past the real last page are dropped unread)."""
        if concurrency <= 1:
            yield from self._sequential_pages(token, subject_set_id, on_first)
            return
        guess = max(1, math.ceil((expected_count or 0) / PAGE_SIZE))
        pool = concurrent.futures.ThreadPoolExecutor(concurrency, "panoptes-page")
        pending: dict[int, concurrent.futures.Future] = {}
        next_to_submit = 1

        def fill(page_count: int) -> None:
            nonlocal next_to_submit
            while next_to_submit <= page_count and len(pending) < 4 * concurrency:
                # In a copy of this context: the page's log lines and dependency carry the export's ids.
                pending[next_to_submit] = pool.submit(
                    contextvars.copy_context().run, self.subjects_page, token, subject_set_id, next_to_submit
                )
                next_to_submit += 1

        try:
            fill(guess)
            last = first = pending.pop(1).result()
            if on_first:
                on_first(first)
            yield first
            page_count = _trusted_page_count(first)
            for page in range(2, page_count + 1):
                fill(page_count)
                last = pending.pop(page).result()
                yield last
        finally:
            # Spare guesses, or the pages after a failure: not waited for (and this may run in
            # whichever thread drops the generator, so it must not join the pool's threads).
            pool.shutdown(wait=False, cancel_futures=True)
        yield from self._tail(token, subject_set_id, last, page_count)

    def _sequential_pages(self, token, subject_set_id, on_first) -> Iterator[SubjectPage]:
        first = self.subjects_page(token, subject_set_id, 1)
        if on_first:
            on_first(first)
        yield first
        yield from self._tail(token, subject_set_id, first, _trusted_page_count(first))

    def _tail(self, token, subject_set_id, last: SubjectPage, page_count: int) -> Iterator[SubjectPage]:
        """The pages after `last`, one by one: the rest of the set (concurrency 1) or the pages
        it grew by while it was read. A next_page that does not move forward (malformed answer)
        ends the read; so does MAX_EXTRA_PAGES past page_count."""
        page, extra = last.page + 1, 0
        while (
            last.next_page is not None
            and last.next_page > last.page
            and last.subjects
            and (page <= page_count or extra < MAX_EXTRA_PAGES)
        ):
            extra += page > page_count
            last = self.subjects_page(token, subject_set_id, page)
            yield last
            page += 1


def _trusted_page_count(first: SubjectPage) -> int:
    """page_count as far as the subject count supports it (+1 for a set that grew meanwhile)."""
    return min(first.page_count, max(1, math.ceil(first.count / PAGE_SIZE)) + 1)


def _int(value: Any, default: int) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return default


def _meta(body: dict, key: str) -> dict:
    """body["meta"][key] when both are objects, else {} (a malformed answer must not crash)."""
    meta = body.get("meta")
    meta = meta.get(key) if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def _next_page(body: dict, key: str) -> int | None:
    meta = _meta(body, key)
    value = meta.get("next_page")
    return _int(value, 0) or None if value is not None else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class AuthCache:
    """Short-lived memory of access lookups (token → user, roles, subject sets), keyed by a
    SHA-256 of the token (the token itself is never kept), bounded in size. cachetools' TTLCache
    behind a lock: it is not thread-safe on its own, and the host runs invocations on threads."""

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._cache: cachetools.TTLCache | None = (
            cachetools.TTLCache(max_entries, ttl, timer=clock) if ttl > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Any, value: Any) -> None:
        if self._cache is None:
            return
        with self._lock:
            self._cache[key] = value
