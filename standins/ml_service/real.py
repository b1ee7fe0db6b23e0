"""The deployed service's constants and texts, copied from zooniverse/CameraTraps, branch
`zooniverse-deployment`, api/batch_processing/api_core/ (the file is named at each group).
Nothing here is the emulator's own choice, except JOB_NOT_FOUND_TEXT (marked)."""

from __future__ import annotations

import string
from datetime import UTC, datetime

# server_api_config.py
API_PREFIX = "/v4/camera-trap/detection-batch"
MD_VERSIONS = ("5a", "4.1", "3", "2")  # the keys of MD_VERSIONS_TO_REL_PATH
DEFAULT_MODEL_VERSION = "5a"  # DEFAULT_MD_VERSION
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # IMAGE_SUFFIXES_ACCEPTED, compared lower-cased
MONITOR_PERIOD_MINUTES = 10
MAX_MONITOR_CYCLES = 4 * 7 * int((60 * 24) / MONITOR_PERIOD_MINUTES)  # 4032: four weeks
MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB = 4 * 1000 * 1000
NUM_IMAGES_PER_TASK = 2000  # images a shard (Batch task)
OUTPUT_SAS_EXPIRATION_DAYS = 180
MAX_BATCH_ACCOUNT_ACTIVE_JOBS = 300

# server_job_status_table.py: JobStatusTable.allowed_statuses that end a job
FINAL = ("completed", "failed", "canceled")

# server.py: request_detections() and cancel_request()
ALLOWED_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
CREATED_MSG = "Request received. Listing images next..."
CALLER_401 = (
    "Parameter caller is not supplied or is not on our allowlist. "
    "Please email cameratraps@lila.science to request access."
)
CANCEL_CALLER_401 = "Parameter caller is not supplied or is not on our allowlist."
CANCELED_MSG = "Request has been canceled by the user."
CANCEL_OK = "Canceling signal has been sent. You can verify the status at the /task endpoint"
TOO_MANY_JOBS = "Too many active jobs, please try again later"
TASK_NOT_FOUND = "Task is not found."
JSON_MIMETYPE_415 = "Body needs to have a JSON mimetype (e.g., application/json)."
# Flask 2.0's Request.on_json_loading_failed outside debug mode raises a bare BadRequest().
BAD_JSON_TEXT = (
    "400 Bad Request: The browser (or proxy) sent a request that this server could not understand."
)
# The emulator's guess at azure-batch's BatchErrorException text when the job to terminate
# does not exist (the real text is not in the repository).
JOB_NOT_FOUND_TEXT = (
    "Request encountered an exception.\nCode: JobNotFound\n"
    "Message: {'additional_properties': {}, 'lang': 'en-US', "
    "'value': 'The specified job does not exist.'}"
)

# server_orchestration.py: create_batch_job() and monitor_batch_job()
EMPTY_LIST_MSG = "0 images found in provided list of images."
NO_IMAGES_MSG = (
    "Zero images found in container or in provided list of images "
    "after filtering with the provided parameters."
)
PREPARE_ERROR = "Error occurred while preparing the Batch job: "
SUBMIT_ERROR = "Please contact us. Error occurred while submitting the Batch job: "


def listed_message(num_images: int) -> str:
    return f"{num_images} images listed; submitting the job..."


def too_many_images_message(num_images: int) -> str:
    return (
        f"The number of images ({num_images}) requested for processing exceeds "
        f"the maximum accepted {MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB} in one call"
    )


def submitted_message(num_images: int, num_tasks: int) -> str:
    return (
        f"Submitted {num_images} images to cluster in {num_tasks} shards. "
        "Number of shards failed to be submitted: 0"
    )


def check_message(number: int, succeeded: int, num_tasks: int, failed: int) -> str:
    return (
        f"Check number {number}, {succeeded} out of {num_tasks} shards have "
        f"completed successfully, {failed} shards have failed."
    )


def max_cycles_message(checks: int, succeeded: int) -> str:
    return (
        f"Job unfinished after {checks} x {MONITOR_PERIOD_MINUTES} minutes, please contact us to "
        f"retrieve the results. Number of succeeded shards: {succeeded}"
    )


def utc_now() -> str:
    """server_utils.get_utc_time(): '2021-02-08T20:02:05.699689Z'."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
