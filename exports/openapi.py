"""The export API described in OpenAPI 3.1, served at GET /api/openapi.json.

One source: the paths and methods come from the registered routes (shared/routing.py); this module
adds what a route's code cannot say by itself (summary, parameters, each response with its exact
error codes). tests/unit/test_openapi.py fails when a registered API route has no operation here
or an operation has no registered route, when the document stops validating
(openapi-spec-validator), or when an example stops matching its schema; tests/e2e/test_fuzz.py
runs schemathesis against the running app with it. The examples are real answers recorded by
`make docs` (devtools/openapi_examples.py) into exports/openapi_examples.json.
"""

from __future__ import annotations

import copy
import functools
import json
import pathlib
from typing import Any

from exports.contract import ERRORS, EXPORT_KEYS, CallbackState, ErrorCode, Failure, MlStatus, Status
from exports.model import MAX_PANOPTES_ID
from shared.errors import CommonError
from shared.routing import ROUTES

TITLE = "Subject Assistant export API"
VERSION = "1.0.0"
EXAMPLES = pathlib.Path(__file__).resolve().parent / "openapi_examples.json"
# Every error code the API answers, with its HTTP status and meaning: exports/contract.py ERRORS.
ERROR_STATUS = {str(code): status for code, (status, _) in ERRORS.items()}
ERROR_MEANING = {str(code): meaning for code, (_, meaning) in ERRORS.items()}
AUTHENTICATED: list[str] = [
    ErrorCode.UNAUTHENTICATED,
    ErrorCode.TOO_MANY_REQUESTS,
    ErrorCode.PANOPTES_UNAVAILABLE,
    CommonError.INTERNAL_ERROR,
    ErrorCode.SERVICE_MISCONFIGURED,
]
WITH_BODY: list[str] = [ErrorCode.INVALID_BODY, ErrorCode.BODY_TOO_LARGE]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STRING = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_ID_STRING = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": sorted(ERROR_STATUS)},
                    "message": {"type": "string", "minLength": 1},
                },
            }
        },
    },
    "Progress": {
        "type": "object",
        "required": ["subjects_done", "subjects_total"],
        "additionalProperties": False,
        "properties": {"subjects_done": _COUNT, "subjects_total": _nullable(_COUNT)},
    },
    "Manifest": {
        "type": "object",
        "required": ["subjects", "images", "skipped_frames", "blob"],
        "additionalProperties": False,
        "properties": {"subjects": _COUNT, "images": _COUNT, "skipped_frames": _COUNT, "blob": _STRING},
    },
    "ResultsSummary": {
        "oneOf": [
            {
                "type": "object",
                "description": "Every manifest row accounted for: scored, failed or missing "
                "(images_sent = images_scored + images_failed + images_missing).",
                "additionalProperties": False,
                "required": [
                    "available",
                    "reason",
                    "model",
                    "images_sent",
                    "images_scored",
                    "images_failed",
                    "images_missing",
                    "images_unknown",
                    "failures",
                    "likely_empty_threshold",
                    "images_likely_empty",
                    "subjects_sent",
                    "subjects_all_likely_empty",
                    "subjects_incomplete",
                    "failed_shards",
                    "csv_reason",
                ],
                "properties": {
                    "available": {"const": True},
                    "reason": {"type": "null"},
                    "model": _nullable({**_STRING, "description": "The detector, e.g. megadetector_v5a."}),
                    "images_sent": {**_COUNT, "description": "Rows of the manifest (image frames)."},
                    "images_scored": {**_COUNT, "description": "In the detections file, without a failure."},
                    "images_failed": {
                        **_COUNT,
                        "description": "In the file with a failure. The Subject Assistant shows them as "
                        "100% empty: do not retire them; re-run them.",
                    },
                    "images_missing": {
                        **_COUNT,
                        "description": "Sent but not in the file (their shard failed): the Subject "
                        "Assistant never shows them.",
                    },
                    "images_unknown": {
                        **_COUNT,
                        "description": "Rows of the file that match no manifest row.",
                    },
                    "failures": {
                        "type": "object",
                        "description": "Failed images by the service's failure text.",
                        "additionalProperties": _COUNT,
                    },
                    "likely_empty_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "images_likely_empty": {
                        **_COUNT,
                        "description": "Scored images with max_detection_conf <= likely_empty_threshold: "
                        "what the Subject Assistant's default filter selects.",
                    },
                    "subjects_sent": _COUNT,
                    "subjects_all_likely_empty": {
                        **_COUNT,
                        "description": "Subjects whose every frame was scored and is likely empty.",
                    },
                    "subjects_incomplete": {
                        **_COUNT,
                        "description": "Subjects with a frame failed or missing.",
                    },
                    "failed_shards": _nullable(_COUNT),
                    "csv_reason": _nullable({**_STRING, "description": "Why there is no results CSV."}),
                },
            },
            {
                "type": "object",
                "required": ["available", "reason"],
                "additionalProperties": False,
                "properties": {"available": {"const": False}, "reason": _STRING},
            },
        ]
    },
    "Export": {
        "type": "object",
        "additionalProperties": False,
        "required": list(EXPORT_KEYS),  # exports/contract.py: the keys, declared once
        "properties": {
            "id": {"type": "string", "description": "Opaque, URL-safe."},
            "project_id": _ID_STRING,
            "subject_set_id": _ID_STRING,
            "requested_by": _ID_STRING,
            "status": {
                "type": "string",
                "enum": [str(status) for status in Status],
            },
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "progress": {"$ref": "#/components/schemas/Progress"},
            "manifest": _nullable({"$ref": "#/components/schemas/Manifest"}),
            "ml_task_id": _nullable(_STRING),
            "ml_status": _nullable(
                {
                    "type": "string",
                    "enum": [str(status) for status in MlStatus],
                }
            ),
            "ml_message": _nullable(_STRING),
            "results_url": _nullable({"type": "string", "format": "uri"}),
            "subject_assistant_url": {
                **_nullable({"type": "string", "format": "uri"}),
                "description": "SUBJECT_ASSISTANT_EXTERNAL_URL + ml_task_id, as soon as there is a "
                "task id (null before), so a script may store it. The Subject Assistant can open it "
                "only once ml_status is `running` or later (`completed`, `failed`); before that "
                '(`created`, and `problem`) it shows "ML Task encountered an unknown error", and '
                "while the task runs it says the task is still running. The export page shows the "
                "link only from `running` on.",
            },
            "error": _nullable(
                {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string", "enum": [str(f) for f in Failure]},
                        "message": _STRING,
                    },
                }
            ),
            "results_summary": _nullable({"$ref": "#/components/schemas/ResultsSummary"}),
            "rerun_of": _nullable(
                {**_STRING, "description": "The export whose failed and missing images this one re-runs."}
            ),
            "rerun_images": _nullable(
                {
                    **_COUNT,
                    "description": "Failed + missing images of a completed export: what a re-run sends.",
                }
            ),
            "callback": _nullable({"$ref": "#/components/schemas/Callback"}),
            "results_csv_url": _nullable(
                {
                    "type": "string",
                    "format": "uri",
                    "description": "The results per subject (CSV), through a read-only SAS on that one "
                    "blob valid for at most an hour, minted when the export is read.",
                }
            ),
        },
    },
    "Callback": {
        "type": "object",
        "description": "The callback asked for when the export was started, and its delivery.",
        "additionalProperties": False,
        "required": ["url", "state", "attempts", "last_status", "last_error", "delivered_at"],
        "properties": {
            "url": {**_STRING, "description": "callback_url without its query string."},
            "state": _nullable(
                {
                    "enum": [str(state) for state in CallbackState],
                    "description": "null until the export is completed, failed or cancelled.",
                }
            ),
            "attempts": _COUNT,
            "last_status": _nullable({"type": "integer", "description": "The receiver's last HTTP status."}),
            "last_error": _nullable({**_STRING, "description": "Why the last attempt got no 2xx."}),
            "delivered_at": _nullable({"type": "string", "format": "date-time"}),
        },
    },
    "SubjectSetExports": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "display_name", "subjects_count", "latest_export", "latest_completed_export"],
        "properties": {
            "id": _ID_STRING,
            "display_name": _nullable(_STRING),
            "subjects_count": _nullable(_COUNT),
            "latest_export": _nullable({"$ref": "#/components/schemas/Export"}),
            "latest_completed_export": _nullable({"$ref": "#/components/schemas/Export"}),
        },
    },
    "ProjectExports": {
        "type": "object",
        "required": ["subject_sets"],
        "additionalProperties": False,
        "properties": {
            "subject_sets": {"type": "array", "items": {"$ref": "#/components/schemas/SubjectSetExports"}}
        },
    },
    "Projects": {
        "type": "object",
        "required": ["user", "projects"],
        "additionalProperties": False,
        "properties": {
            "user": {
                "type": "object",
                "required": ["id", "login", "display_name"],
                "additionalProperties": False,
                "properties": {"id": _ID_STRING, "login": _STRING, "display_name": _STRING},
            },
            "projects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "display_name", "slug", "roles"],
                    "additionalProperties": False,
                    "properties": {
                        "id": _ID_STRING,
                        "display_name": _nullable(_STRING),
                        "slug": _nullable(_STRING),
                        "roles": {"type": "array", "items": {"enum": ["owner", "collaborator"]}},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"enum": ["ok", "unavailable"]}},
    },
}

PANOPTES_ID = {"type": "integer", "minimum": 1, "maximum": MAX_PANOPTES_ID}


def _path_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": what,
        "schema": copy.deepcopy(PANOPTES_ID),
    }


EXPORT_ID = {
    "name": "export_id",
    "in": "path",
    "required": True,
    "description": "An export's id, as the API gave it (opaque).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
PROJECT_ID = _path_param("project_id", "A Panoptes project id.")
SUBJECT_SET_ID = _path_param("subject_set_id", "A Panoptes subject-set id.")
OPTIONAL_BODY = {
    "required": False,
    "description": "None needed: empty, or a JSON object of at most 64 KiB (ignored).",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
START_BODY = {
    "required": False,
    "description": "Empty, or a JSON object of at most 64 KiB. `callback_url` and `callback_token` "
    "(both or neither) ask for the Export to be POSTed to that URL when it is completed, failed or "
    "cancelled, signed with the token (see `callbacks`); a re-POST while the export is active keeps "
    "the first callback. Other keys are ignored.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "callback_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "https, on a host that resolves only to public addresses.",
                    },
                    "callback_token": {
                        "type": "string",
                        "minLength": 16,
                        "maxLength": 256,
                        "pattern": "^[ -~]{16,256}$",
                        "description": "The HMAC-SHA256 key of X-Signature-256. Stored encrypted.",
                    },
                },
                "dependentRequired": {"callback_url": ["callback_token"], "callback_token": ["callback_url"]},
            },
            "example": {
                "callback_url": "https://pipeline.example.org/hooks/exports",
                "callback_token": "a-long-random-secret-of-yours",
            },
        }
    },
}
VERIFY_EXAMPLE = """```python
import hashlib, hmac

def verified(body: bytes, header: str, token: str) -> bool:
    expected = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)  # header: the X-Signature-256 value
```"""
CALLBACKS = {
    "exportEnded": {
        "{$request.body#/callback_url}": {
            "post": {
                "summary": "The export ended (completed, failed or cancelled)",
                "description": "The Export resource, as JSON, signed: verify `X-Signature-256` "
                "over the exact body bytes before trusting it. A 2xx ends delivery; network errors, "
                "408, 425, 429 and 5xx are retried with backoff (30 s doubling to 1 h) for "
                "CALLBACK_RETRY_HOURS; any other answer gives up. Redirects are not followed. "
                "The export's `callback` shows the delivery; GET the export when one was missed.\n\n"
                + VERIFY_EXAMPLE,
                "parameters": [
                    {
                        "name": "X-Signature-256",
                        "in": "header",
                        "required": True,
                        "description": "sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with callback_token>",
                        "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Export"}}},
                },
                "responses": {"2XX": {"description": "Received: delivery ends."}},
            }
        }
    }
}

# (template, method) -> what the code cannot say by itself.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("api/projects/{project_id}/subject-sets/{subject_set_id}/exports", "POST"): {
        "operationId": "startExport",
        "summary": "Start an export of a subject set",
        "description": "Idempotent while one is active: 202 with a new export, or 200 with the "
        "export already in progress for that subject set.",
        "parameters": [PROJECT_ID, SUBJECT_SET_ID],
        "requestBody": START_BODY,
        "callbacks": CALLBACKS,
        "ok": {
            "202": ("A new export, queued.", "Export"),
            "200": ("The export already active for this subject set.", "Export"),
        },
        "location": True,
        "errors": [
            ErrorCode.INVALID_ID,
            *WITH_BODY,
            ErrorCode.INVALID_CALLBACK,
            *AUTHENTICATED,
            ErrorCode.FORBIDDEN,
            ErrorCode.SUBJECT_SET_NOT_FOUND,
            ErrorCode.QUEUE_UNAVAILABLE,
            ErrorCode.EXPORT_BUSY,
        ],
        "links": True,
    },
    ("api/projects/{project_id}/exports", "GET"): {
        "operationId": "listProjectExports",
        "summary": "Every subject set of a project with its exports",
        "description": "Hamlet's listing page as data: each subject set with its latest export and "
        "its latest completed export.",
        "parameters": [PROJECT_ID],
        "ok": {"200": ("The project's subject sets.", "ProjectExports")},
        "completed_links": True,
        "errors": [ErrorCode.INVALID_ID, *AUTHENTICATED, ErrorCode.FORBIDDEN],
    },
    ("api/projects", "GET"): {
        "operationId": "listProjects",
        "summary": "Who is signed in, and the projects they may export",
        "description": "The projects on which the caller is owner or collaborator.",
        "parameters": [],
        "ok": {"200": ("The caller and their projects.", "Projects")},
        "errors": AUTHENTICATED,
    },
    ("api/exports/{export_id}", "GET"): {
        "operationId": "getExport",
        "summary": "One export's state",
        "parameters": [EXPORT_ID],
        "ok": {"200": ("The export.", "Export")},
        "errors": [*AUTHENTICATED, ErrorCode.EXPORT_NOT_FOUND],
    },
    ("api/exports/{export_id}/cancel", "POST"): {
        "operationId": "cancelExport",
        "summary": "Cancel an export",
        "description": "Stops a queued or building export, or asks the ML service to cancel its "
        "task. A cancelled export stays cancelled whatever the ML service reports later.",
        "parameters": [EXPORT_ID],
        "requestBody": OPTIONAL_BODY,
        "ok": {"200": ("The export, cancelled.", "Export")},
        "errors": [
            *WITH_BODY,
            *AUTHENTICATED,
            ErrorCode.EXPORT_NOT_FOUND,
            ErrorCode.EXPORT_FINAL,
            ErrorCode.CANCEL_REFUSED,
            ErrorCode.EXPORT_BUSY,
            ErrorCode.ML_UNAVAILABLE,
        ],
    },
    ("api/exports/{export_id}/rerun", "POST"): {
        "operationId": "rerunExport",
        "summary": "Re-run the failed and missing images of a completed export",
        "description": "A new export of the same subject set whose manifest holds exactly the "
        "completed export's failed and missing rows, verbatim, in its order; the new export's "
        "rerun_of is its id. Idempotent while an export of that subject set is active: 202 with the "
        "new export, or 200 with the active one.",
        "parameters": [EXPORT_ID],
        "requestBody": OPTIONAL_BODY,
        "ok": {
            "202": ("A new export, queued, re-running the failed and missing images.", "Export"),
            "200": ("The export already active for this subject set.", "Export"),
        },
        "location": True,
        "errors": [
            *WITH_BODY,
            *AUTHENTICATED,
            ErrorCode.EXPORT_NOT_FOUND,
            ErrorCode.EXPORT_NOT_COMPLETED,
            ErrorCode.NOTHING_TO_RERUN,
            ErrorCode.QUEUE_UNAVAILABLE,
            ErrorCode.EXPORT_BUSY,
        ],
    },
    ("api/health", "GET"): {
        "operationId": "health",
        "summary": "Is storage reachable?",
        "anonymous": True,
        "parameters": [],
        "ok": {"200": ("Storage is reachable.", "Health"), "503": ("Storage is not reachable.", "Health")},
        "errors": [],
    },
    ("api/openapi.json", "GET"): {
        "operationId": "openapi",
        "summary": "This document",
        "anonymous": True,
        "parameters": [],
        "ok": {"200": ("The OpenAPI 3.1 description of the API.", None)},
        "errors": [],
    },
}


def _responses(spec: dict[str, Any], head: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, schema) in spec["ok"].items():
        response: dict[str, Any] = {"description": description}
        if not head:
            ref = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
            response["content"] = {"application/json": {"schema": ref}}
        if spec.get("location") and not head:
            response["headers"] = {"Location": {"description": "/api/exports/{id}", "schema": _STRING}}
        responses[status] = response
    by_status: dict[int, list[str]] = {}
    for code in spec["errors"]:
        by_status.setdefault(ERROR_STATUS[code], []).append(code)
    for status, codes in sorted(by_status.items()):
        description = " ".join(f"`{c}`: {ERROR_MEANING[c]}" for c in codes)
        response = {"description": description}
        if not head:
            schema = copy.deepcopy(SCHEMAS["Error"])
            schema["properties"]["error"]["properties"]["code"]["enum"] = codes
            response["content"] = {"application/json": {"schema": schema}}
        if status == 401 and not head:
            response["headers"] = {"WWW-Authenticate": {"schema": _STRING}}
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[str(status)] = response
    return responses


def _operation(spec: dict[str, Any], head: bool, examples: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": spec["operationId"] + ("Head" if head else ""),
        "summary": spec["summary"] + (" (headers only)" if head else ""),
        "parameters": _with_parameter_examples(spec["parameters"], examples),
        "responses": _responses(spec, head),
    }
    if spec.get("description"):
        operation["description"] = spec["description"]
    if spec.get("anonymous"):
        operation["security"] = []
    if spec.get("requestBody") and not head:
        operation["requestBody"] = spec["requestBody"]
    if spec.get("callbacks") and not head:
        operation["callbacks"] = spec["callbacks"]
    if not head:
        for status, example in examples.get(spec["operationId"], {}).items():
            media = operation["responses"].get(status, {}).get("content", {}).get("application/json")
            if media is not None:
                media["example"] = example
    if spec.get("links") and not head:
        links = {
            "getExport": {"operationId": "getExport", "parameters": {"export_id": "$response.body#/id"}},
            "cancelExport": {
                "operationId": "cancelExport",
                "parameters": {"export_id": "$response.body#/id"},
            },
            "rerunExport": {
                "operationId": "rerunExport",
                "parameters": {"export_id": "$response.body#/id"},
            },
        }
        for status in ("200", "202"):
            operation["responses"][status]["links"] = links
    if spec.get("completed_links") and not head:
        # From a completed export (the listing names each set's latest one) to its re-run.
        operation["responses"]["200"]["links"] = {
            "rerunLatestCompleted": {
                "operationId": "rerunExport",
                "parameters": {"export_id": "$response.body#/subject_sets/0/latest_completed_export/id"},
            }
        }
    return operation


def _with_parameter_examples(parameters: list[dict[str, Any]], examples: dict[str, Any]) -> list:
    found = examples.get("_parameters", {})
    return [{**p, "example": found[p["name"]]} if p["name"] in found else p for p in parameters]


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered /api route."""
    examples = json.loads(EXAMPLES.read_text(encoding="utf-8")) if EXAMPLES.exists() else {}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        if not route.template.startswith("api/"):
            continue
        item = paths.setdefault("/" + route.template, {})
        for method in route.methods:
            spec = OPERATIONS.get((route.template, "GET" if method == "HEAD" else method))
            if spec is None:
                raise KeyError(f"{method} /{route.template} has no operation in exports/openapi.py")
            item[method.lower()] = _operation(spec, method == "HEAD", examples)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Export a Zooniverse subject set to the MegaDetector batch ML "
            "service for the ML Subject Assistant. Every route but health and "
            "this document takes the caller's Panoptes access token; only a "
            "project's owners and collaborators may use its exports. Errors are "
            '`{"error": {"code", "message"}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"panoptesToken": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "panoptesToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Panoptes (Zooniverse) OAuth access token, as the Subject "
                    "Assistant and this service's page obtain by signing in.",
                }
            },
        },
    }
