"""Who may do what: the Panoptes bearer token, project roles and subject-set ownership.

Lookups are cached briefly (AUTH_CACHE_SECONDS) under a SHA-256 of the token, never the token.
A token Panoptes rejected is remembered (by hash, REJECTED_TOKEN_SECONDS) so that repeating it
costs no Panoptes call: a rejected Panoptes token never becomes valid again.

Every distinct unknown token costs one Panoptes `/me` call, so an anonymous client could spend the
app's Panoptes quota by sending made-up tokens. Lookups of tokens in no cache therefore take from a
per-instance budget (UNKNOWN_TOKEN_LOOKUPS_PER_SECOND, a token bucket); past it the answer is
429 too_many_requests with Retry-After. A token Panoptes accepted is remembered as known (by hash,
KNOWN_TOKEN_SECONDS, about a Panoptes token's lifetime) and never waits for that budget, even
after its cached lookups expire; routes that take no token never touch it.
"""

from __future__ import annotations

import hashlib

from exports.contract import ErrorCode
from exports.errors import api_error
from exports.panoptes import (
    AuthCache,
    PanoptesClient,
    PanoptesError,
    PanoptesUnauthorized,
    PanoptesUnavailable,
    PanoptesUser,
)
from shared.rate_limit import TokenBucket
from shared.responses import ApiError

REJECTED_TOKEN_SECONDS = 60
KNOWN_TOKEN_SECONDS = 2 * 3600

EXPORT_ROLES = frozenset({"owner", "collaborator"})

UNAUTHENTICATED = api_error(
    ErrorCode.UNAUTHENTICATED,
    "Sign in to Zooniverse and send your Panoptes access token as 'Authorization: Bearer <token>'.",
    {"WWW-Authenticate": 'Bearer realm="panoptes"'},
)
TOKEN_REJECTED = api_error(
    ErrorCode.UNAUTHENTICATED,
    "Zooniverse did not accept your access token: it "
    "has expired or was revoked. Sign in to Zooniverse again.",
    {"WWW-Authenticate": 'Bearer realm="panoptes", error="invalid_token"'},
)
PANOPTES_UNAVAILABLE = api_error(
    ErrorCode.PANOPTES_UNAVAILABLE,
    "Zooniverse (Panoptes) could not be reached to check your access. Please try again in a minute.",
)


def too_many_lookups(wait: float) -> ApiError:
    return api_error(
        ErrorCode.TOO_MANY_REQUESTS,
        "Too many sign-in checks of new access tokens right now. Please try again in a few seconds.",
        {"Retry-After": TokenBucket.retry_after(wait)},
    )


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _roles_key(token: str, user_id: str, project_id: str) -> tuple[str, str, str, str]:
    """Keyed by the token's hash too: a role answer is reused only for the token that asked."""
    return ("roles", _token_key(token), user_id, project_id)


class Access:
    def __init__(
        self,
        panoptes: PanoptesClient,
        cache: AuthCache,
        rejected: AuthCache,
        known: AuthCache,
        lookups: TokenBucket,
    ):
        self.panoptes = panoptes
        self.cache = cache
        # Their own bounded caches: a flood of made-up tokens must not push out real users' lookups.
        self.rejected = rejected
        self.known = known
        self.lookups = lookups

    def user(self, token: str) -> PanoptesUser:
        token_key = _token_key(token)
        if self.rejected.get(token_key):
            raise TOKEN_REJECTED
        key = ("user", token_key)
        user = self.cache.get(key)
        if user is None:
            if not self.known.get(token_key):
                wait = self.lookups.take()
                if wait:
                    raise too_many_lookups(wait)
            try:
                user = self._call(self.panoptes.me, token)
            except ApiError as error:
                if error is TOKEN_REJECTED:
                    self.rejected.put(token_key, True)
                raise
            self.cache.put(key, user)
            self.known.put(token_key, True)
        return user

    def roles(self, token: str, user_id: str, project_id: str) -> frozenset[str]:
        key = _roles_key(token, user_id, project_id)
        roles = self.cache.get(key)
        if roles is None:
            roles = frozenset(self._call(self.panoptes.project_roles, token, project_id, user_id))
            self.cache.put(key, roles)
        return roles

    def can_export(self, token: str, user_id: str, project_id: str) -> bool:
        return bool(self.roles(token, user_id, project_id) & EXPORT_ROLES)

    def require_export_role(self, token: str, user_id: str, project_id: str) -> None:
        if not self.can_export(token, user_id, project_id):
            raise api_error(
                ErrorCode.FORBIDDEN,
                f"Project {project_id} does not exist, or you are "
                "not one of its owners or collaborators (only they can use its exports). "
                "Check the project id, or ask the project's owner for the collaborator role.",
            )

    def require_subject_set(self, token: str, project_id: str, subject_set_id: str) -> int | None:
        """Raise unless the set belongs to the project; returns its subject count (None when
        Panoptes did not say)."""
        # The Subject Assistant lists a project's sets before the user clicks export: a set
        # seen in that listing (same token, within the cache time) needs no second lookup.
        known = self.cache.get(("sets", _token_key(token), project_id))
        if known is not None and subject_set_id in known:
            return known[subject_set_id]
        subject_set = self._call(self.panoptes.subject_set, token, subject_set_id)
        linked = str(((subject_set or {}).get("links") or {}).get("project", ""))
        if subject_set is None or linked != project_id:
            raise api_error(
                ErrorCode.SUBJECT_SET_NOT_FOUND,
                f"Subject set {subject_set_id} was not found in project {project_id}.",
            )
        return _subject_count(subject_set)

    def export_projects(self, token: str, user_id: str) -> list[tuple[dict, list[str]]]:
        """The projects on which the user may export, with their Panoptes fields and the user's
        export roles there (owner, collaborator), in Panoptes' order. Cached per token; it also
        answers later role checks on these projects for the same token."""
        key = ("projects", _token_key(token), user_id)
        projects = self.cache.get(key)
        if projects is None:
            roles: dict[str, set[str]] = {}
            for project_id, project_roles in self._call(
                lambda: list(self.panoptes.roles_of_user(token, user_id))
            ):
                roles.setdefault(project_id, set()).update(project_roles)
            for project_id, project_roles in roles.items():
                self.cache.put(_roles_key(token, user_id, project_id), frozenset(project_roles))
            ids = [p for p, r in roles.items() if r & EXPORT_ROLES]
            found = self._call(lambda: list(self.panoptes.projects(token, ids))) if ids else []
            projects = [(p, sorted(roles.get(str(p["id"]), set()) & EXPORT_ROLES)) for p in found]
            self.cache.put(key, projects)
        return projects

    def subject_sets_of_project(self, token: str, project_id: str) -> list[dict]:
        """Every subject set of the project (all pages); remembered for require_subject_set."""
        sets = self._call(lambda: list(self.panoptes.subject_sets_of_project(token, project_id)))
        self.cache.put(
            ("sets", _token_key(token), project_id), {str(s["id"]): _subject_count(s) for s in sets}
        )
        return sets

    @staticmethod
    def _call(function, *args):
        try:
            return function(*args)
        except PanoptesUnauthorized:
            raise TOKEN_REJECTED from None
        except (PanoptesUnavailable, PanoptesError):
            raise PANOPTES_UNAVAILABLE from None


def _subject_count(subject_set: dict) -> int | None:
    count = subject_set.get("set_member_subjects_count")
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
