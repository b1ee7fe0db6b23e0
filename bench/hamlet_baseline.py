"""Hamlet's export step, as it was (the baseline to beat), against any Panoptes-like endpoint.

zooniverse/hamlet: `SubjectSet.find(id).subjects` in panoptes-client, which pages
`set_member_subjects` 20 at a time and then loads every subject with its own request
(about N + N/20 requests), builds `[[url, meta], ...]` in memory, `json.dumps` it and uploads
one blob. Used only by the benchmark; never deployed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import ContainerClient
from panoptes_client import Panoptes, SubjectSet


@dataclass
class BaselineResult:
    wall: float
    subjects: int
    rows: int
    manifest: bytes


def hamlet_rows(
    project_id: str, subject_set_id: str, endpoint: str, limit: int | None = None
) -> tuple[list[list[Any]], int]:
    """Hamlet's loop: one row per frame, meta as a JSON string (no image filter)."""
    for name in [k for k in os.environ if k.startswith("PANOPTES_")]:
        os.environ.pop(name)  # the client's constructor reads these and may try to log in
    rows: list[list[Any]] = []
    subjects = 0
    with Panoptes(endpoint=endpoint):
        subject_set = SubjectSet.find(subject_set_id)
        for subject in subject_set.subjects:
            for frame_id, location in enumerate(subject.locations):
                url = list(location.values())[0]
                rows.append(
                    [
                        url,
                        json.dumps(
                            {
                                "project_id": str(project_id),
                                "subject_set_id": str(subject_set_id),
                                "subject_id": str(subject.id),
                                "frame_id": str(frame_id),
                            }
                        ),
                    ]
                )
            subjects += 1
            if limit is not None and subjects >= limit:
                break
    return rows, subjects


def run_baseline(
    project_id: str,
    subject_set_id: str,
    endpoint: str,
    container_client: ContainerClient,
    blob_name: str,
    limit: int | None = None,
) -> BaselineResult:
    """Read the set the Hamlet way and upload the manifest as one blob; timed end to end."""
    started = time.perf_counter()
    rows, subjects = hamlet_rows(project_id, subject_set_id, endpoint, limit)
    data = json.dumps(rows).encode("utf-8")
    container_client.upload_blob(blob_name, data, overwrite=True)
    return BaselineResult(time.perf_counter() - started, subjects, len(rows), data)
