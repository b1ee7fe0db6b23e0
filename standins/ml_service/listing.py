"""The first half of create_batch_job() (server_orchestration.py): fetch the image list,
validate it (server_utils.validate_provided_image_paths) and filter it, with the same messages
and the same crashes. The second half (submission) is a status the monitor writes (tasks.py)."""

from __future__ import annotations

import random
import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests

from . import real


@dataclass
class Submission:
    """What the service received for one accepted request."""

    request_id: str
    body: dict
    manifest_bytes: bytes | None = None
    manifest: Any = None
    download_status: int | None = None
    content_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Listed:
    """The image list after filtering: its rows, and each row's index in the list as sent
    (None when those are 0..n-1, so a million-row list does not carry a million indices)."""

    rows: list
    indices: list[int] | None


def download(url: str, sub: Submission, timeout: float) -> Any:
    """requests.get(url).json(), without a status check, as the real thread does.

    The emulator adds a timeout and ignores proxy settings (no proxy between it and Azurite).
    """
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, timeout=timeout)
    sub.download_status = response.status_code
    sub.content_type = response.headers.get("Content-Type")
    sub.manifest_bytes = response.content
    sub.manifest = response.json()
    return sub.manifest


def list_images(body: dict, image_paths: Any, rng: random.Random) -> Listed | tuple[str, str]:
    """The filtered image list, or the (status, message) the job ends with.

    Raises what the real code raises (its caller writes `failed` with the exception's text).
    """
    use_url = body.get("use_url", False)  # the raw value: "false" is truthy here
    image_path_prefix = body.get("image_path_prefix")
    first_n = body.get("first_n")
    first_n = int(first_n) if first_n else None
    sample_n = body.get("sample_n")
    sample_n = int(sample_n) if sample_n else None

    if len(image_paths) == 0:
        return ("completed", real.EMPTY_LIST_MSG)
    error, metadata_available = validate_provided_image_paths(image_paths)
    if error is not None:
        raise ValueError(f"image paths provided in the json are not valid: {error}")
    rows: list = []
    indices: list[int] = []
    for index, p in enumerate(image_paths):
        locator = p[0] if metadata_available else p
        if image_path_prefix is not None and not locator.startswith(image_path_prefix):
            continue
        path = urllib.parse.urlparse(locator).path if use_url else locator
        if path.lower().endswith(real.IMAGE_SUFFIXES):
            rows.append(p)
            indices.append(index)
    if first_n:
        if not first_n > 0:
            raise AssertionError("parameter first_n is 0.")
        rows, indices = rows[:first_n], indices[:first_n]
    if sample_n:
        if not sample_n > 0:
            raise AssertionError("parameter sample_n is 0.")
        if sample_n > len(rows):
            raise ValueError(
                "parameter sample_n specifies more images than "
                "available (after filtering by other provided params)."
            )
        order = list(range(len(rows)))
        rng.shuffle(order)  # seeded, so reproducible (the real shuffle is not)
        rows, indices = [rows[k] for k in order[:sample_n]], [indices[k] for k in order[:sample_n]]
    num_images = len(rows)
    if num_images < 1:
        return ("completed", real.NO_IMAGES_MSG)
    if num_images > real.MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB:
        return ("failed", real.too_many_images_message(num_images))
    # Ascending distinct indices ending at n - 1 are 0..n-1: nothing was dropped or reordered.
    unchanged = not sample_n and indices[-1] == num_images - 1
    return Listed(rows, None if unchanged else indices)


def validate_provided_image_paths(image_paths: Any) -> tuple[str | None, bool]:
    """server_utils.validate_provided_image_paths(), same messages and same crashes."""
    first_item = image_paths[0]
    metadata_available = False
    if isinstance(first_item, str):
        for i in image_paths:
            if not isinstance(i, str):
                return "Not all items in image_paths are of type string.", metadata_available
        return None, metadata_available
    if isinstance(first_item, list):
        metadata_available = True
        for i in image_paths:
            if len(i) != 2:
                return (
                    "Items in image_paths are lists, but not all lists "
                    "are of length 2 [image locator, metadata]."
                ), metadata_available
        return None, metadata_available
    return "image_paths contain items that are not strings nor lists.", metadata_available
