"""The export service's HTTP API as ../shared/spec/CONTRACT.md describes it, including what the
real service does not serve yet (`POST /api/exports/{id}/rerun`, `results_csv_url` minted on
every read), and Zooniverse's password sign-in as panoptes-client drives it. Real HTTP on
127.0.0.1 (standins/server.py, with its fault injection); each export walks a script of states,
one per read, so a test decides exactly what a waiting client sees."""

from __future__ import annotations

import copy
import itertools
import re
import threading
from typing import Any
from urllib.parse import parse_qs

from standins.server import Request, Response, StandInServer

TOKEN = "fake-owner-token"
USERNAME, PASSWORD = "demo-owner", "correct horse battery staple"
MINT = "<a fresh results CSV link, signed at this read>"
CSV = b"subject_id,frames_sent,frames_scored,frames_failed,frames_missing,max_detection_conf\r\n91011,2,2,0,0,0.93\r\n"
UNAUTHENTICATED = {
    "error": {
        "code": "unauthenticated",
        "message": "Zooniverse did not accept your access token: it has expired or was revoked. "
        "Sign in to Zooniverse again.",
    }
}
_ids = itertools.count(1)


def export_resource(status: str, export_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """An Export resource with every key the contract lists (null when unknown)."""
    export_id = export_id or f"1234-5678-{next(_ids):020d}"
    at_ml = status in ("submitted", "running", "completed") or changes.get("ml_task_id")
    resource: dict[str, Any] = {
        "id": export_id,
        "project_id": "1234",
        "subject_set_id": "5678",
        "status": status,
        "created_at": "2026-11-22T13:00:00Z",
        "updated_at": "2026-11-22T13:01:00Z",
        "requested_by": "42",
        "progress": {"subjects_done": 25 if at_ml else 0, "subjects_total": 25},
        "manifest": {"subjects": 25, "images": 49, "skipped_frames": 1, "blob": "m.json"} if at_ml else None,
        "ml_task_id": "f940ecd58c7746b1bde89bd6ba5a5202" if at_ml else None,
        "ml_status": {"submitted": "created", "running": "running", "completed": "completed"}.get(status),
        "ml_message": None,
        "results_url": None,
        "subject_assistant_url": "https://subject-assistant.zooniverse.org/#/tasks/f940ecd58c7746b1bde89bd6ba5a5202"
        if at_ml
        else None,
        "error": None,
        "results_summary": None,
        "rerun_of": None,
        "rerun_images": None,
        "results_csv_url": None,
        "callback": None,
    }
    if status == "completed":
        resource["results_summary"] = {
            "available": True,
            "reason": None,
            "model": "megadetector_v5a",
            "images_sent": 49,
            "images_scored": 45,
            "images_failed": 2,
            "images_missing": 2,
            "failures": {"Failure inference": 2},
            "likely_empty_threshold": 0.5,
            "images_likely_empty": 21,
            "subjects_sent": 25,
            "subjects_all_likely_empty": 3,
            "subjects_incomplete": 2,
        }
        resource["rerun_images"] = 4
        resource["results_csv_url"] = MINT
    resource.update(changes)
    return resource


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeExportService(StandInServer):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, list[dict[str, Any]]] = {}  # export id -> states, one per read
        self.reads: dict[str, int] = {}
        self.starts: dict[tuple[str, str], tuple[int, str]] = {}  # (project, set) -> (202 | 200, id)
        self.reruns: dict[str, tuple[int, Any]] = {}  # export id -> (status, export id or error body)
        self.links_minted = 0
        self.refused_links: set[int] = set()  # CSV links (by number) that answer 403, as an expired SAS
        self.csv_requests: list[dict[str, str]] = []  # the headers of every CSV download
        self.sign_ins = 0
        self._state_lock = threading.Lock()

    def error_body(self, status: int, message: str) -> Any:  # injected faults, in the contract's shape
        return error("injected_fault", message)

    # -- what a test sets up ------------------------------------------------------------
    def script(self, *states: dict[str, Any]) -> str:
        """An export that shows `states` to successive reads (the last one stays); its id."""
        export_id = states[0]["id"]
        self.scripts[export_id] = [{**state, "id": export_id} for state in states]
        return export_id

    # -- the routes -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/blobs/"):
            return self._csv(req)
        if path in ("/users/sign_in", "/oauth/token"):
            return self._sign_in(req)
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(401, UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})
        if match := re.fullmatch(r"/api/projects/(\d+)/subject-sets/(\d+)/exports", path):
            status, export_id = self.starts[(match[1], match[2])]
            return Response(status, self._read(export_id), {"Location": f"/api/exports/{export_id}"})
        if match := re.fullmatch(r"/api/exports/([^/]+)/rerun", path):
            status, answer = self.reruns[match[1]]
            body = self._read(answer) if isinstance(answer, str) else answer
            return Response(status, body)
        if match := re.fullmatch(r"/api/exports/([^/]+)/cancel", path):
            if match[1] not in self.scripts:
                return Response(404, error("export_not_found", "No export with that id exists."))
            cancelled = {**self.scripts[match[1]][-1], "status": "cancelled", "ml_status": "canceled"}
            self.scripts[match[1]] = [cancelled]
            return Response(200, self._read(match[1]))
        if match := re.fullmatch(r"/api/exports/([^/]+)", path):
            if match[1] not in self.scripts:
                return Response(404, error("export_not_found", "No export with that id exists."))
            return Response(200, self._read(match[1]))
        return Response(404, error("not_found", f"No route {path}."))

    def _read(self, export_id: str) -> dict[str, Any]:
        with self._state_lock:
            states = self.scripts[export_id]
            n = self.reads.get(export_id, 0)
            self.reads[export_id] = n + 1
            state = copy.deepcopy(states[min(n, len(states) - 1)])
            if state.get("results_csv_url") == MINT:
                self.links_minted += 1
                state["results_csv_url"] = (
                    f"{self.url}/blobs/{export_id}.csv?sv=2025-01-05&sp=r&sig={self.links_minted}"
                )
        return state

    def _csv(self, req: Request) -> Response:
        self.csv_requests.append(dict(req.headers.items()))
        if int(req.query.get("sig", "0")) in self.refused_links:
            body = "<Error><Code>AuthenticationFailed</Code><Message>Signed expiry time has passed</Message></Error>"
            return Response(403, body, content_type="application/xml")
        return Response(200, CSV, content_type="text/csv; charset=utf-8")

    def _sign_in(self, req: Request) -> Response:
        """Zooniverse's Devise sign-in and Doorkeeper's password grant, as far as
        panoptes-client uses them: a CSRF token, then the session cookie, then the token."""
        cookie = req.headers.get("Cookie") or ""
        if req.path == "/users/sign_in" and req.method == "GET":
            return Response(200, {}, {"x-csrf-token": "csrf-1", "Set-Cookie": "_session=anonymous; Path=/"})
        if req.path == "/users/sign_in":
            body = req.json()
            user = body.get("user", {})
            if body.get("authenticity_token") != "csrf-1" or (user.get("login"), user.get("password")) != (
                USERNAME,
                PASSWORD,
            ):
                return Response(401, {"error": "Invalid login or password."})
            self.sign_ins += 1
            return Response(
                200,
                {"users": [{"id": "42", "login": USERNAME}]},
                {"Set-Cookie": "_session=signed-in; Path=/"},
            )
        form = {k: v[-1] for k, v in parse_qs(req.body.decode()).items()}
        if form.get("grant_type") != "password" or "_session=signed-in" not in cookie:
            return Response(401, {"errors": ["not signed in"]})
        return Response(
            200,
            {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 7200, "refresh_token": "r1"},
        )
