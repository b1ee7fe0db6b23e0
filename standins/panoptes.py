"""Panoptes (Zooniverse API) stand-in.

Serves the read-only subset of https://www.zooniverse.org/api that the export
needs, shaped like the real JSON:API-ish responses (`links`, `meta` with page
hrefs relative to /api, ids as strings) so that panoptes-client 1.7.1 works
against it unchanged. Data is added through Python methods; huge subject sets
are synthetic and computed page by page.

It also serves Panoptes' OAuth sign-in for browsers (`/oauth/authorize`, implicit grant): a
form to pick one of the users, answered with the token in the redirect URI's fragment.

Reads are lock-free: mutators swap whole objects (atomic under the GIL), so a
request sees either the old or the new state of a set, never half of it.
"""

from __future__ import annotations

import collections
import hashlib
import html
import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from .server import Request, Response, StandInServer

API_CONTENT_TYPE = "application/vnd.api+json; version=1; charset=utf-8"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100  # Panoptes silently clamps larger page sizes
UPLOADS = "https://panoptes-uploads.zooniverse.org/production/subject_location"
TIMESTAMP = "2024-01-01T00:00:00.000Z"
OAUTH_EXPIRES_IN = 7200  # seconds: Panoptes' access tokens last two hours
_OAUTH_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")

# Top-level link templates, as Panoptes sends them (informational only).
_LINK_TEMPLATES = {
    "subjects": {
        "subjects.project": {"href": "/projects/{subjects.project}", "type": "projects"},
        "subjects.subject_sets": {"href": "/subject_sets/{subjects.subject_sets}", "type": "subject_sets"},
    },
    "set_member_subjects": {
        "set_member_subjects.subject": {
            "href": "/subjects/{set_member_subjects.subject}",
            "type": "subjects",
        },
        "set_member_subjects.subject_set": {
            "href": "/subject_sets/{set_member_subjects.subject_set}",
            "type": "subject_sets",
        },
    },
    "subject_sets": {
        "subject_sets.project": {"href": "/projects/{subject_sets.project}", "type": "projects"}
    },
    "project_roles": {
        "project_roles.project": {"href": "/projects/{project_roles.project}", "type": "projects"},
        "project_roles.owner": {"href": "/{project_roles.owner.href}", "type": "owners"},
    },
    "projects": {
        "projects.subject_sets": {"href": "/subject_sets?project_id={projects.id}", "type": "subject_sets"}
    },
}


def synthetic_location(subject_id: str, frame: int) -> str:
    """A stable, uuid-looking upload URL for a synthetic frame."""
    h = hashlib.md5(f"{subject_id}:{frame}".encode()).hexdigest()
    return f"{UPLOADS}/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}.jpeg"


@dataclass
class _User:
    id: str
    login: str
    expired: bool = False


@dataclass
class _Project:
    id: str
    display_name: str
    private: bool
    roles: dict  # user_id -> [role, ...]
    role_ids: dict  # user_id -> project_role id


@dataclass
class _SubjectSet:
    id: str
    project_id: str
    display_name: str
    subjects: list | None = None  # explicit subjects, or None when synthetic
    synthetic: tuple | None = None  # (count, frames, first_subject_id)
    metadata: dict = field(default_factory=dict)

    @property
    def explicit(self) -> list:
        return self.subjects or []

    def count(self) -> int:
        return self.synthetic[0] if self.synthetic else len(self.explicit)

    def subject_at(self, i: int) -> dict:
        if self.synthetic:
            _, frames, first = self.synthetic
            sid = str(first + i)
            return {
                "id": sid,
                "locations": [{"image/jpeg": synthetic_location(sid, f)} for f in range(frames)],
                "metadata": {"Filename": f"IMG_{first + i:09d}.JPG"},
            }
        return self.explicit[i]

    def subject_id_at(self, i: int) -> str:
        return str(self.synthetic[2] + i) if self.synthetic else self.explicit[i]["id"]

    def index_of(self, subject_id: str) -> int | None:
        if self.synthetic:
            n, _, first = self.synthetic
            i = int(subject_id) - first if subject_id.isdigit() else -1
            return i if 0 <= i < n else None
        for i, s in enumerate(self.explicit):
            if str(s["id"]) == subject_id:
                return i
        return None


class PanoptesStandIn(StandInServer):
    json_content_type = API_CONTENT_TYPE

    def __init__(
        self, latency: float = 0.0, seed: int = 0, log_size: int = 10_000, page_cache_bytes: int = 64 << 20
    ):
        super().__init__(latency=latency, seed=seed, log_size=log_size)
        # Rendered subject pages of synthetic sets (they never change): a real Panoptes renders
        # pages on its own servers, not on the machine running the worker (the bench says how
        # much that is). Bounded LRU, by bytes.
        self._page_cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._page_cache_bytes = 0
        self._page_cache_limit = page_cache_bytes
        self._page_cache_lock = threading.Lock()
        self._users_by_token: dict[str, _User] = {}
        self._projects: dict[str, _Project] = {}
        self._sets: dict[str, _SubjectSet] = {}
        self._subject_sets_of: dict[str, list] = {}  # explicit subject id -> [set ids]
        self._next_role_id = 1
        # OAuth (implicit grant) sign-in page, see `_oauth`. Tests may change these.
        self.oauth_expires_in = OAUTH_EXPIRES_IN
        self.oauth_client_ids: set[str] | None = None  # None: any well-formed application id
        self._sign_in_tokens: dict[str, str] = {}  # user id -> the token a sign-in hands out
        self._renewed = 0

    # -- data API ----------------------------------------------------------
    def add_user(self, token: str, user_id, login: str) -> None:
        self._users_by_token[token] = _User(str(user_id), login)
        self._sign_in_tokens.setdefault(str(user_id), token)

    def expire_token(self, token: str) -> None:
        self._users_by_token[token].expired = True

    def add_project(self, project_id, display_name: str, private: bool = False, roles: dict | None = None):
        self._projects[str(project_id)] = _Project(str(project_id), display_name, private, {}, {})
        for user_id, user_roles in (roles or {}).items():
            self.set_roles(project_id, user_id, user_roles)

    def set_roles(self, project_id, user_id, roles: list) -> None:
        """Give (or with [] take away) a user's roles on a project."""
        project = self._projects[str(project_id)]
        project.role_ids.setdefault(str(user_id), str(self._next_role_id))
        self._next_role_id += 1
        project.roles = {**project.roles, str(user_id): list(roles)}

    def add_subject_set(self, set_id, project_id, display_name: str, subjects: list | None = None) -> None:
        ss = _SubjectSet(str(set_id), str(project_id), display_name, subjects=[])
        self._sets[ss.id] = ss
        self.replace_subjects(set_id, subjects or [])

    def add_synthetic_subject_set(
        self,
        set_id,
        project_id,
        display_name: str,
        count: int,
        frames: int = 2,
        first_subject_id: int | None = None,
    ) -> None:
        """A set of `count` subjects generated on the fly (nothing stored per subject)."""
        if first_subject_id is None:
            first_subject_id = 10_000_000 + int(set_id) * 1_000_000
        self._sets[str(set_id)] = _SubjectSet(
            str(set_id), str(project_id), display_name, synthetic=(count, frames, int(first_subject_id))
        )

    def replace_subjects(self, set_id, subjects: list) -> None:
        """Swap a set's members, e.g. to simulate the set changing mid-read."""
        ss = self._sets[str(set_id)]
        normalized = [{**s, "id": str(s["id"])} for s in subjects]
        for s in normalized:
            sets = self._subject_sets_of.setdefault(s["id"], [])
            if ss.id not in sets:
                sets.append(ss.id)
        ss.subjects, ss.synthetic = normalized, None

    # -- HTTP --------------------------------------------------------------
    def error_body(self, status: int, message: str):
        return {"errors": [{"message": message}]}

    def _error(self, status: int, message: str) -> Response:
        return Response(status, self.error_body(status, message))

    def handle(self, req: Request) -> Response:
        if req.path == "/oauth" or req.path.startswith("/oauth/"):
            return self._oauth(req)
        viewer, denied = self._viewer(req)
        if denied:
            return denied
        parts = req.path.rstrip("/").split("/")[1:]  # "/api/subjects/1" -> ["api", "subjects", "1"]
        if req.method != "GET" or len(parts) < 2 or parts[0] != "api":
            return self._error(404, "Not found")
        route, arg = parts[1], (parts[2] if len(parts) == 3 else None)
        if len(parts) > 3:
            return self._error(404, "Not found")
        if route == "me" and arg is None:
            if viewer is None:
                return self._error(401, "You must be logged in to access this resource.")
            return Response(200, {"users": [self._user_json(viewer)], "links": {}, "meta": {}})
        handler = {
            "projects": self._projects_route,
            "project_roles": self._roles_route,
            "subject_sets": self._sets_route,
            "subjects": self._subjects_route,
            "set_member_subjects": self._sms_route,
        }.get(route)
        if handler is None:
            return self._error(404, "Not found")
        return handler(req, viewer, arg)

    def _viewer(self, req: Request):
        """Return (user or None, error response or None) from the bearer token."""
        auth = req.headers.get("Authorization")
        if not auth:
            return None, None
        scheme, _, token = auth.partition(" ")
        user = self._users_by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            return None, self._error(401, "The access token is invalid")
        if user.expired:
            return None, self._error(401, "The access token expired")
        return user, None

    def _can_see(self, project_id: str, viewer: _User | None) -> bool:
        project = self._projects.get(project_id)
        if project is None:
            return False
        return not project.private or (viewer is not None and bool(project.roles.get(viewer.id)))

    # -- OAuth sign-in (implicit grant, as panoptes-javascript-client uses it) -----------
    # GET /oauth/authorize?response_type=token&client_id=…&redirect_uri=…&state=… answers a
    # small form with a button per user; choosing one (POST, or GET, /oauth/authorize/choose
    # with the same fields plus user_id) redirects (302) to
    #   redirect_uri#access_token=<token>&token_type=Bearer&expires_in=<n>&state=<state>
    # and "Cancel" to redirect_uri#error=access_denied&error_description=…&state=<state>.
    # The token is the one the user was added with; if Panoptes was told it expired
    # (expire_token), signing in again hands out a new token for the same user, as Panoptes
    # gives every sign-in a fresh one. `oauth_expires_in` sets expires_in (default 7200 s).
    def _oauth(self, req: Request) -> Response:
        fields = dict(req.query)
        if req.method == "POST":
            form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
            fields.update({k: v[-1] for k, v in form.items()})
        if req.path.rstrip("/") == "/oauth/authorize" and req.method == "GET":
            problem = self._oauth_problem(fields)
            return _oauth_page(400, problem) if problem else self._oauth_form(fields)
        if req.path.rstrip("/") == "/oauth/authorize/choose" and req.method in ("GET", "POST"):
            problem = self._oauth_problem(fields)
            if problem:
                return _oauth_page(400, problem)
            state = fields.get("state")
            if fields.get("deny"):
                answer = {
                    "error": "access_denied",
                    "error_description": "The resource owner or authorization server denied the request.",
                }
            else:
                token = self._oauth_token(fields.get("user_id", ""))
                if token is None:
                    return _oauth_page(400, "Choose one of the users listed on the sign-in page.")
                answer = {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": str(int(self.oauth_expires_in)),
                }
            if state is not None:
                answer["state"] = state
            location = fields["redirect_uri"] + "#" + urlencode(answer)
            return Response(302, "", headers={"Location": location, "Cache-Control": "no-store"})
        return _oauth_page(404, "There is no such sign-in page.")

    def _oauth_problem(self, fields: dict) -> str | None:
        """Why the authorization request is refused, or None (Panoptes shows an error page and
        never redirects to an unchecked URI)."""
        client_id = fields.get("client_id") or ""
        if not _OAUTH_CLIENT_ID.fullmatch(client_id) or (
            self.oauth_client_ids is not None and client_id not in self.oauth_client_ids
        ):
            return "The client_id is missing or is not a registered application."
        if fields.get("response_type") != "token":
            return "The response_type must be 'token' (the implicit grant)."
        redirect = fields.get("redirect_uri") or ""
        try:
            parts = urlsplit(redirect)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or "#" in redirect:
            return "The redirect_uri must be an absolute http(s) URL without a fragment."
        return None

    def _oauth_token(self, user_id: str) -> str | None:
        token = self._sign_in_tokens.get(user_id)
        if token is None:
            return None
        user = self._users_by_token.get(token)
        if user is not None and user.expired:
            self._renewed += 1
            token = f"{token}-renewed-{self._renewed}"
            self._users_by_token[token] = _User(user.id, user.login)
            self._sign_in_tokens[user_id] = token
        return token

    def _oauth_form(self, fields: dict) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(fields[name], quote=True)}">'
            for name in ("response_type", "client_id", "redirect_uri", "state")
            if name in fields
        )
        buttons = []
        for user_id, token in self._sign_in_tokens.items():
            user = self._users_by_token[token]
            roles = [
                f"{', '.join(r)} of {p.display_name} ({p.id})"
                for p in self._projects.values()
                for uid, r in p.roles.items()
                if uid == user_id and r
            ]
            about = "; ".join(roles) or "no project roles"
            buttons.append(
                f'<li><button type="submit" name="user_id" value="{html.escape(user_id, quote=True)}" '
                f'aria-describedby="roles-{html.escape(user_id, quote=True)}">Sign in as '
                f'{html.escape(user.login)}</button> <span id="roles-{html.escape(user_id, quote=True)}">'
                f"{html.escape(about)}</span></li>"
            )
        client = html.escape(fields.get("client_id", ""))
        body = (
            f"<h1>Sign in to Zooniverse</h1>"
            f"<p>This is the local Panoptes stand-in. The application <strong>{client}</strong> asks "
            f"to act as you. Choose who you are:</p>"
            f'<form method="post" action="/oauth/authorize/choose">{hidden}'
            f"<ul>{''.join(buttons)}</ul>"
            f'<p><button type="submit" name="deny" value="1">Cancel</button></p></form>'
        )
        return _oauth_page(200, None, body)

    # -- routes --------------------------------------------------------------
    def _projects_route(self, req, viewer, arg):
        if arg is not None:
            if not self._can_see(arg, viewer):
                return self._error(404, f"Could not find project with id='{arg}'")
            rows = [self._projects[arg]]
        else:
            ids = set(req.query["id"].split(",")) if req.query.get("id") else None
            rows = [
                p
                for p in self._projects.values()
                if self._can_see(p.id, viewer) and (ids is None or p.id in ids)
            ]
        return self._paged(
            req, "projects", len(rows), lambda a, b: [self._project_json(p) for p in rows[a:b]]
        )

    def _roles_route(self, req, viewer, arg):
        pid, uid = req.query.get("project_id"), req.query.get("user_id")
        rows = []
        for p in self._projects.values():
            if (pid and p.id != pid) or not self._can_see(p.id, viewer):
                continue
            for user_id, roles in p.roles.items():
                if uid and user_id != uid:
                    continue
                rows.append(
                    {
                        "id": p.role_ids[user_id],
                        "roles": list(roles),
                        "created_at": TIMESTAMP,
                        "updated_at": TIMESTAMP,
                        "href": f"/project_roles/{p.role_ids[user_id]}",
                        "links": {
                            "project": p.id,
                            "owner": {"id": user_id, "type": "users", "href": f"/users/{user_id}"},
                        },
                    }
                )
        return self._paged(req, "project_roles", len(rows), lambda a, b: rows[a:b])

    def _sets_route(self, req, viewer, arg):
        if arg is not None:
            ss = self._sets.get(arg)
            if ss is None or not self._can_see(ss.project_id, viewer):
                return self._error(404, f"Could not find subject_set with id='{arg}'")
            rows = [ss]
        else:
            pid = req.query.get("project_id")
            rows = [
                s
                for s in self._sets.values()
                if (not pid or s.project_id == pid) and self._can_see(s.project_id, viewer)
            ]
        return self._paged(
            req, "subject_sets", len(rows), lambda a, b: [self._set_json(s) for s in rows[a:b]]
        )

    def _subjects_route(self, req, viewer, arg):
        if arg is not None:
            found = self._find_subject(arg, viewer)
            if found is None:
                return self._error(404, f"Could not find subject with id='{arg}'")
            return self._paged(req, "subjects", 1, lambda a, b: [found][a:b])
        set_id = req.query.get("subject_set_id")
        if set_id:
            ss = self._sets.get(set_id)
            if ss is None or not self._can_see(ss.project_id, viewer):
                ss = None  # Panoptes hides private sets: an empty page, not an error
            if ss is not None and ss.synthetic:
                return self._synthetic_page(req, ss)
            total = ss.count() if ss else 0
            return self._paged(
                req,
                "subjects",
                total,
                lambda a, b: [self._subject_json(ss.subject_at(i), ss) for i in range(a, b)],
            )
        ids = [i for i in req.query.get("id", "").split(",") if i]
        rows = [s for s in (self._find_subject(i, viewer) for i in ids) if s is not None]
        return self._paged(req, "subjects", len(rows), lambda a, b: rows[a:b])

    def _sms_route(self, req, viewer, arg):
        ss = self._sets.get(req.query.get("subject_set_id", ""))
        if ss is None or not self._can_see(ss.project_id, viewer):
            return self._paged(req, "set_member_subjects", 0, lambda a, b: [])
        subject_id = req.query.get("subject_id")
        if subject_id:  # membership test used by panoptes-client's `in`
            i = ss.index_of(subject_id)
            rows = [] if i is None else [self._sms_json(ss, i)]
            return self._paged(req, "set_member_subjects", len(rows), lambda a, b: rows[a:b])
        return self._paged(
            req, "set_member_subjects", ss.count(), lambda a, b: [self._sms_json(ss, i) for i in range(a, b)]
        )

    def _synthetic_page(self, req: Request, ss: _SubjectSet) -> Response:
        """A synthetic set's subjects page, rendered once (same bytes as rendering it again)."""
        key = (ss.id, ss.project_id, ss.synthetic, tuple(sorted(req.query.items())))
        with self._page_cache_lock:
            body = self._page_cache.get(key)
            if body is not None:
                self._page_cache.move_to_end(key)
        if body is None:
            page = self._paged(
                req,
                "subjects",
                ss.count(),
                lambda a, b: [self._subject_json(ss.subject_at(i), ss) for i in range(a, b)],
            )
            body = json.dumps(page.body).encode("utf-8")
            with self._page_cache_lock:
                if key not in self._page_cache and len(body) <= self._page_cache_limit:
                    self._page_cache[key] = body
                    self._page_cache_bytes += len(body)
                    while self._page_cache_bytes > self._page_cache_limit:
                        self._page_cache_bytes -= len(self._page_cache.popitem(last=False)[1])
        return Response(200, body, content_type=self.json_content_type)

    def prerender(self, set_id, page_size: int = MAX_PAGE_SIZE) -> int:
        """Render every page of a synthetic set into the page cache now (benchmarks call this
        before timing, so the stand-in's rendering is not counted against the worker). Returns
        the number of pages; the cache must be big enough to keep them."""
        ss = self._sets[str(set_id)]
        pages = max(1, math.ceil(ss.count() / page_size))
        for page in range(1, pages + 1):
            query = {"subject_set_id": ss.id, "page_size": str(page_size), "page": str(page)}
            self._synthetic_page(Request("GET", "/api/subjects", query, {}), ss)
        return pages

    # -- lookups and JSON shapes ---------------------------------------------
    def _find_subject(self, subject_id: str, viewer) -> dict | None:
        candidates = [self._sets[s] for s in self._subject_sets_of.get(subject_id, []) if s in self._sets]
        candidates += [s for s in self._sets.values() if s.synthetic]
        for ss in candidates:
            i = ss.index_of(subject_id)
            if i is not None and self._can_see(ss.project_id, viewer):
                return self._subject_json(ss.subject_at(i), ss)
        return None

    def _paged(self, req: Request, slug: str, total: int, fetch: Callable[[int, int], list]) -> Response:
        """Build a Panoptes page: rows for the requested page plus `meta` with hrefs."""
        page_size = _int(req.query.get("page_size"), DEFAULT_PAGE_SIZE)
        page_size = min(max(page_size, 1), MAX_PAGE_SIZE)
        page = max(_int(req.query.get("page"), 1), 1)
        start = (page - 1) * page_size
        rows = fetch(start, min(start + page_size, total)) if start < total else []
        page_count = math.ceil(total / page_size)
        params = {k: v for k, v in req.query.items() if k != "page"}
        base = "/" + req.path.split("/api/", 1)[1].rstrip("/")

        def href(p: int | None) -> str:  # Panoptes omits `page` from first_href
            q = params if p is None else dict(params, page=p)
            return base + ("?" + urlencode(sorted(q.items())) if q else "")

        prev_page = page - 1 if page > 1 else None
        next_page = page + 1 if page < page_count else None
        meta = {
            "page": page,
            "page_size": page_size,
            "count": total,
            "include": [],
            "page_count": page_count,
            "previous_page": prev_page,
            "next_page": next_page,
            "first_href": href(None),
            "previous_href": prev_page and href(prev_page),
            "next_href": next_page and href(next_page),
            "last_href": href(max(page_count, 1)),
        }
        return Response(200, {slug: rows, "links": _LINK_TEMPLATES.get(slug, {}), "meta": {slug: meta}})

    def _user_json(self, user: _User) -> dict:
        return {
            "id": user.id,
            "login": user.login,
            "display_name": user.login,
            "credited_name": user.login,
            "href": f"/users/{user.id}",
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "type": "users",
            "links": {},
        }

    def _project_json(self, p: _Project) -> dict:
        owner = next((u for u, r in p.roles.items() if "owner" in r), None)
        return {
            "id": p.id,
            "display_name": p.display_name,
            "slug": f"user/{p.display_name.lower().replace(' ', '-')}",
            "private": p.private,
            "live": True,
            "launch_approved": not p.private,
            "href": f"/projects/{p.id}",
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "links": {
                "owner": {"id": owner, "type": "users", "href": f"/users/{owner}"} if owner else None,
                "subject_sets": [s.id for s in self._sets.values() if s.project_id == p.id],
                "workflows": [],
            },
        }

    def _set_json(self, ss: _SubjectSet) -> dict:
        return {
            "id": ss.id,
            "display_name": ss.display_name,
            "set_member_subjects_count": ss.count(),
            "metadata": ss.metadata,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "href": f"/subject_sets/{ss.id}",
            "links": {"project": ss.project_id, "workflows": []},
        }

    def _subject_json(self, s: dict, ss: _SubjectSet) -> dict:
        return {
            "id": s["id"],
            "metadata": s.get("metadata", {}),
            "locations": s.get("locations", []),
            "zooniverse_id": None,
            "external_id": None,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "href": f"/subjects/{s['id']}",
            "links": {"project": ss.project_id, "collections": [], "subject_sets": [ss.id]},
        }

    def _sms_json(self, ss: _SubjectSet, i: int) -> dict:
        sms_id = str(int(ss.id) * 10_000_000 + i + 1) if ss.id.isdigit() else f"{ss.id}-{i + 1}"
        return {
            "id": sms_id,
            "priority": None,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "href": f"/set_member_subjects/{sms_id}",
            "links": {"subject": ss.subject_id_at(i), "subject_set": ss.id, "retired_workflows": []},
        }


def _oauth_page(status: int, problem: str | None, body: str = "") -> Response:
    if problem is not None:
        body = f"<h1>Sign-in request refused</h1><p>{html.escape(problem)}</p>"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>Sign in to Zooniverse (stand-in)</title></head>'
        f"<body><main>{body}</main></body></html>"
    )
    return Response(
        status, page, headers={"Cache-Control": "no-store"}, content_type="text/html; charset=utf-8"
    )


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
