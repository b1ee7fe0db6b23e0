"""What happens once when an export completes: its images accounted for (exports/accounting.py)
against the detections file, the results CSV and the re-run rows written beside the manifest,
and all of it recorded on the export, so that nothing later depends on the detections link (it
expires) and a re-run needs no Panoptes read.

The shell around the pure pass: the detections file is downloaded as a bounded stream (the link
was checked by the results policy, exports/results.py), our manifest is read from its blob as a
stream, and the two outputs go to block blobs as they are produced. None of it can stop the
completion: an unreadable file gives a summary that says why, a CSV that could not be written
leaves the summary's `csv_reason`, and re-run rows that could not be stored leave a note that
the re-run route answers with.
"""

from __future__ import annotations

import logging
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from exports import accounting, model, results
from exports.blob_writer import BlockBlobWriter, read_blob
from exports.ml_service import ResultsUnreadable
from exports.services import Services

log = logging.getLogger(__name__)
CSV_TYPE = "text/csv; charset=utf-8"


def csv_blob_name(export_id: str) -> str:
    return f"ml-subject-assistant-{export_id}-results.csv"


def rerun_blob_name(export_id: str) -> str:
    return f"ml-subject-assistant-{export_id}-rerun.json"


class _Output:
    """A block blob written as the pass goes; a failure stops this output only (the pass goes on
    and the reason is kept)."""

    def __init__(self, services: Services, name: str, content_type: str):
        self.name = name
        self.problem: str | None = None
        self.written = 0
        self._writer = BlockBlobWriter(services.container.get_blob_client(name), content_type)

    def write(self, data: bytes) -> None:
        if self.problem is not None:
            return
        try:
            self._writer.write(data)
            self.written += len(data)
        except Exception as exc:
            self.problem = f"it could not be written ({type(exc).__name__})"

    def close(self) -> None:
        self._writer.close()

    def commit(self) -> str | None:
        """The blob's name once committed, or None (with `problem` saying why)."""
        try:
            if self.problem is None:
                self._writer.commit()
                return self.name
        except Exception as exc:
            self.problem = f"it could not be written ({type(exc).__name__})"
        finally:
            self._writer.close()
        return None


def account(services: Services, export: model.Export, answer: Any) -> model.Export:
    """The completed `export` with its results accounted for (or a summary saying why not)."""
    settings = services.settings
    threshold = settings.likely_empty_confidence
    message = getattr(answer, "message", None)
    failed_shards = message.get("num_failed_shards") if isinstance(message, dict) else None
    assert export.results_url is not None  # next_state keeps only a link it will follow
    try:
        # Parsed once more by the same parser: the download connects to exactly this host and port.
        url = results.checked_url(export.results_url, services.settings.results_policy)
        with services.ml.results(
            url, settings.results_max_megabytes * 1024 * 1024, settings.results_download_seconds
        ) as stream:
            detections = accounting.read_detections(stream)
    except (ResultsUnreadable, results.UrlProblem) as exc:
        return _unavailable(export, str(exc))
    except accounting.NotADetectionsFile as exc:
        return _unavailable(export, f"The detections file could not be read: {exc}.")
    except Exception as exc:  # a results file we cannot read must not block completion
        log.exception("export %s: reading the detections file failed", export.id)
        return _unavailable(export, f"The detections file could not be read ({type(exc).__name__}).")

    if export.manifest_blob is None:
        return _unavailable(
            export, "The export's manifest is not recorded, so its images cannot be accounted for."
        )
    csv_out = _Output(services, csv_blob_name(export.id), CSV_TYPE)
    rerun_out = _Output(services, rerun_blob_name(export.id), "application/json")
    try:
        manifest = read_blob(services.container, export.manifest_blob)
        found = accounting.account(manifest, detections, threshold, csv_out.write, rerun_out.write)
    except ResourceNotFoundError:
        csv_out.close()
        rerun_out.close()
        return _unavailable(
            export,
            "The export's manifest is no longer stored, so its images cannot be accounted for "
            "and nothing can be re-run. Export the subject set again to send every image.",
        )
    except accounting.NotAManifest as exc:
        csv_out.close()
        rerun_out.close()
        log.error("export %s: its manifest blob is not a manifest: %s", export.id, exc)
        return _unavailable(
            export, "The export's manifest could not be read, so its images cannot be accounted for."
        )
    csv_blob = csv_out.commit()
    rerun_blob = rerun_out.commit() if found.rerun_images else None
    summary = accounting.summary(found, detections, threshold, failed_shards)
    summary["csv_reason"] = None if csv_blob else f"The results CSV is not available: {csv_out.problem}."
    note = None
    if found.rerun_images and rerun_blob is None:
        note = f"The failed and missing images could not be stored for a re-run: {rerun_out.problem}."
    elif not found.rerun_images:
        note = "Every image was scored: nothing failed or went missing."
    log.info(
        "export %s: %d images accounted for: %d scored, %d failed, %d missing, %d unknown rows in the file",
        export.id,
        found.images_sent,
        found.images_scored,
        found.images_failed,
        found.images_missing,
        found.images_unknown,
    )
    return model.record_results(
        export,
        summary,
        csv_blob=csv_blob,
        rerun_images=found.rerun_images,
        rerun_subjects=found.rerun_subjects,
        rerun_blob=rerun_blob,
        rerun_note=note,
    )


def _unavailable(export: model.Export, reason: str) -> model.Export:
    log.warning("export %s: results summary unavailable: %s", export.id, reason)
    return model.record_results(export, results.unavailable(reason), rerun_note=reason)
