"""What a person reads: an export, its results summary, a project's listing, and how to follow
an export later, as lines of text. Pure functions of the service's JSON."""

from __future__ import annotations

import shlex
from typing import Any

ACTIVE = ("queued", "building", "submitted", "running")
FINAL = ("completed", "failed", "cancelled")
# The summary's keys in the order people read them; keys the service adds later are shown
# after these, by their own names.
SUMMARY_ORDER = (
    "images_sent",
    "images_submitted",
    "images_scored",
    "images_returned",
    "images_failed",
    "images_missing",
    "images_likely_empty",
    "subjects_sent",
    "subjects_all_likely_empty",
    "subjects_incomplete",
)
SUMMARY_NOT_COUNTS = ("available", "reason", "model", "failures", "likely_empty_threshold", "csv_reason")


def one_line(text: Any, limit: int = 200) -> str:
    """A message from elsewhere (the ML service's, an error's) on one line, bounded."""
    words = " ".join(str(text).split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def state_in_words(export: dict[str, Any]) -> str:
    status = export.get("status")
    progress = export.get("progress") or {}
    done, total = progress.get("subjects_done"), progress.get("subjects_total")
    if status == "queued":
        return "queued, waiting for a worker"
    if status == "building":
        of = f" ({done} of {total})" if done is not None and total is not None else ""
        return f"reading subjects from Zooniverse{of}"
    if status in ("submitted", "running"):
        ml = export.get("ml_status") or "waiting"
        message = export.get("ml_message")
        return f"at the ML service, {ml}" + (f": {one_line(message, 120)}" if message else "")
    return str(status)


def describe_export(export: dict[str, Any]) -> list[str]:
    lines = [f"Export {export.get('id')}: {state_in_words(export)}"]
    lines.append(
        f"  Subject set {export.get('subject_set_id')} of project {export.get('project_id')}, "
        f"started {export.get('created_at')} by user {export.get('requested_by')}"
    )
    if export.get("rerun_of"):
        images = export.get("manifest") or {}
        lines.append(f"  Re-run of export {export['rerun_of']}" + _images(images.get("images")))
    progress = export.get("progress") or {}
    manifest = export.get("manifest") or {}
    if progress.get("subjects_total") is not None:
        read = f"  Subjects read: {progress.get('subjects_done')} of {progress.get('subjects_total')}"
        if manifest.get("images") is not None:
            skipped = manifest.get("skipped_frames") or 0
            read += f" ({manifest['images']} images sent"
            read += f"; {skipped} other frame{'s' if skipped != 1 else ''} left out)" if skipped else ")"
        lines.append(read)
    if export.get("subject_assistant_url"):
        lines.append(f"  Subject Assistant: {export['subject_assistant_url']}")
    error = export.get("error")
    if export.get("status") == "failed" and isinstance(error, dict):
        lines.append(f"  Error ({error.get('code')}): {one_line(error.get('message'), 500)}")
    if export.get("status") == "cancelled" and export.get("subject_assistant_url"):
        lines.append("  (The link shows whatever part the ML service had done before the cancel.)")
    lines += ["  " + line for line in summary_lines(export.get("results_summary"))]
    if export.get("rerun_images"):
        lines.append(f"  Images to re-run: {export['rerun_images']} (sa-export rerun {export.get('id')})")
    callback = export.get("callback")
    if isinstance(callback, dict):
        lines.append(
            f"  Callback: {callback.get('state')}, {callback.get('attempts')} attempt(s), "
            f"last answer {callback.get('last_status')}"
        )
    return lines


def _images(count: Any) -> str:
    return f" ({count} images)" if count is not None else ""


def summary_lines(summary: Any) -> list[str]:
    """The results summary (contract: results_summary); [] before the export completed."""
    if not isinstance(summary, dict):
        return []
    if not summary.get("available"):
        return [f"Results summary: not available ({one_line(summary.get('reason') or 'no reason given')})"]
    model = f" ({summary['model']})" if summary.get("model") else ""
    lines = [f"Results{model}:"]
    keys = [k for k in SUMMARY_ORDER if k in summary]
    # Keys the service adds later are shown when they hold a value (a null reads as nothing).
    keys += [
        k
        for k in summary
        if k not in SUMMARY_ORDER and k not in SUMMARY_NOT_COUNTS and summary[k] is not None
    ]
    width = max((len(k) for k in keys), default=0)
    for key in keys:
        line = f"  {key.replace('_', ' '):<{width}}  {summary[key]}"
        if key == "images_likely_empty" and summary.get("likely_empty_threshold") is not None:
            line += f"  (highest detection confidence at most {summary['likely_empty_threshold']})"
        if key == "images_failed" and summary.get("failures"):
            line += "  (" + ", ".join(f"{one_line(k, 80)}: {n}" for k, n in summary["failures"].items()) + ")"
        lines.append(line)
    if summary.get("csv_reason"):
        lines.append(f"  {one_line(summary['csv_reason'])}")
    return lines


def describe_listing(listing: dict[str, Any]) -> list[str]:
    sets = listing.get("subject_sets") or []
    if not sets:
        return ["This project has no subject sets."]
    lines: list[str] = []
    for subject_set in sets:
        count = subject_set.get("subjects_count")
        size = f" ({count} subjects)" if count is not None else ""
        lines.append(f"Subject set {subject_set.get('id')}: {subject_set.get('display_name')}{size}")
        latest = subject_set.get("latest_export")
        completed = subject_set.get("latest_completed_export")
        if latest is None:
            lines.append("  no export yet")
            continue
        lines.append(
            f"  latest export {latest.get('id')}: {state_in_words(latest)} ({latest.get('updated_at')})"
        )
        if completed and completed.get("subject_assistant_url"):
            which = "its results" if completed.get("id") == latest.get("id") else "latest completed"
            lines.append(f"  {which}: {completed['subject_assistant_url']}")
    return lines


def follow_command(export_id: str, url_flag: str | None) -> str:
    """The command that picks up waiting for an export where this one stopped."""
    words = ["sa-export", "status", export_id, "--wait"]
    if url_flag:
        words += ["--url", url_flag]
    return shlex.join(words)
