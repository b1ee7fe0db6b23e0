"""The contract's words, declared once (CONTRACT.md): the Export's keys, its statuses, the ML
statuses it shows, the failure codes of a failed export and the API's error codes with their HTTP
status and meaning. `model.to_resource`, the OpenAPI document (exports/openapi.py), the README's
tables (devtools/docs.py) and the tests all read them from here.

Codes are StrEnums, so a code is a string on the wire and in storage, and a mistyped one is a
name error that mypy catches; tests/unit/test_contract.py fails when a declared code is never used
(and when the tables below and the enums disagree). The codes every feature can answer (404/405
for unknown routes, and 500 internal_error) are shared/errors.py's CommonError.
"""

from __future__ import annotations

from enum import StrEnum

from shared.errors import CommonError


class Status(StrEnum):
    """An export's status: queued -> building -> submitted -> running -> completed | failed |
    cancelled."""

    QUEUED = "queued"
    BUILDING = "building"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.BUILDING, Status.SUBMITTED, Status.RUNNING})
FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
ML_ACTIVE_STATUSES = frozenset({Status.SUBMITTED, Status.RUNNING})


class MlStatus(StrEnum):
    """The ML service's request_status words (`canceled` with one l, as the service writes it)."""

    CREATED = "created"
    RUNNING = "running"
    PROBLEM = "problem"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class CallbackState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"


class Failure(StrEnum):
    """`error.code` of a failed export."""

    SUBJECT_SET_EMPTY = "subject_set_empty"
    TOKEN_EXPIRED = "token_expired"
    PANOPTES_UNAVAILABLE = "panoptes_unavailable"
    PANOPTES_ERROR = "panoptes_error"
    ML_REJECTED = "ml_rejected"
    ML_BUSY = "ml_busy"
    ML_UNAVAILABLE = "ml_unavailable"
    ML_SUBMISSION_UNKNOWN = "ml_submission_unknown"
    ML_FAILED = "ml_failed"
    ML_NO_RESULTS = "ml_no_results"
    ML_TASK_NOT_FOUND = "ml_task_not_found"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL_ERROR = "internal_error"


class ErrorCode(StrEnum):
    """The export API's error codes (`{"error": {"code", "message"}}`)."""

    INVALID_ID = "invalid_id"
    INVALID_BODY = "invalid_body"
    INVALID_CALLBACK = "invalid_callback"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    SUBJECT_SET_NOT_FOUND = "subject_set_not_found"
    EXPORT_NOT_FOUND = "export_not_found"
    EXPORT_FINAL = "export_final"
    CANCEL_REFUSED = "cancel_refused"
    EXPORT_BUSY = "export_busy"
    EXPORT_NOT_COMPLETED = "export_not_completed"
    NOTHING_TO_RERUN = "nothing_to_rerun"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_REQUESTS = "too_many_requests"
    SERVICE_MISCONFIGURED = "service_misconfigured"
    PANOPTES_UNAVAILABLE = "panoptes_unavailable"
    ML_UNAVAILABLE = "ml_unavailable"
    QUEUE_UNAVAILABLE = "queue_unavailable"


# Every code the API answers: its HTTP status and what it means (the OpenAPI document and the
# README's table of error codes are generated from this).
ERRORS: dict[str, tuple[int, str]] = {
    ErrorCode.INVALID_ID: (
        400,
        "A project or subject-set id is not a Panoptes id (a whole number from 1 to "
        "9223372036854775807); checked before anything else.",
    ),
    ErrorCode.INVALID_BODY: (400, "The body is neither empty nor a JSON object."),
    ErrorCode.INVALID_CALLBACK: (
        400,
        "callback_url or callback_token cannot be used (the message says why): give both or "
        "neither; the URL https on a host that resolves only to public addresses; the token 16 to "
        "256 printable characters.",
    ),
    ErrorCode.UNAUTHENTICATED: (
        401,
        "No bearer token, or Panoptes rejected it (expired or revoked): sign in again.",
    ),
    ErrorCode.FORBIDDEN: (
        403,
        "The project does not exist, or the caller is not its owner or collaborator.",
    ),
    ErrorCode.SUBJECT_SET_NOT_FOUND: (404, "The subject set does not exist, or belongs to another project."),
    ErrorCode.EXPORT_NOT_FOUND: (
        404,
        "No such export, or the caller is not an owner or collaborator of its project.",
    ),
    ErrorCode.EXPORT_FINAL: (409, "The export is already completed, failed or cancelled."),
    ErrorCode.CANCEL_REFUSED: (
        409,
        "The ML service cannot cancel the task as it is now (the message says why).",
    ),
    ErrorCode.EXPORT_BUSY: (409, "The export kept changing during the request: try again."),
    ErrorCode.EXPORT_NOT_COMPLETED: (
        409,
        "Only a completed export's failed and missing images can be re-run.",
    ),
    ErrorCode.NOTHING_TO_RERUN: (
        409,
        "Nothing failed or went missing, or the export's results could not be accounted for "
        "(the message says which).",
    ),
    ErrorCode.BODY_TOO_LARGE: (
        413,
        "The body is larger than 64 KiB (refused on its Content-Length, unread).",
    ),
    ErrorCode.TOO_MANY_REQUESTS: (
        429,
        "Too many new access tokens were checked with Panoptes this second "
        "(UNKNOWN_TOKEN_LOOKUPS_PER_SECOND): retry after the Retry-After seconds.",
    ),
    CommonError.INTERNAL_ERROR: (500, "A fault on our side; nothing was changed."),
    ErrorCode.SERVICE_MISCONFIGURED: (
        500,
        "A setting of the service is wrong (its name is in the operators' log).",
    ),
    ErrorCode.PANOPTES_UNAVAILABLE: (
        502,
        "Panoptes could not be reached to check access: try again in a minute.",
    ),
    ErrorCode.ML_UNAVAILABLE: (502, "The ML service could not be reached, or refused the call."),
    ErrorCode.QUEUE_UNAVAILABLE: (503, "The export could not be queued: try again in a minute."),
}

# The Export resource's keys, in the order it is written (model.to_resource builds exactly these).
EXPORT_KEYS: tuple[str, ...] = (
    "id",
    "project_id",
    "subject_set_id",
    "status",
    "created_at",
    "updated_at",
    "requested_by",
    "progress",
    "manifest",
    "ml_task_id",
    "ml_status",
    "ml_message",
    "results_url",
    "subject_assistant_url",
    "error",
    "results_summary",
    "rerun_of",
    "rerun_images",
    "results_csv_url",
    "callback",
)
