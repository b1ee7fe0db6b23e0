"""A small, realistic camera-trap project for the demo and tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .panoptes import UPLOADS, PanoptesStandIn

OTHER_PROJECT_NAME = "Someone Else's Cameras"  # demo-outsider's private project


@dataclass(frozen=True)
class SampleInfo:
    project_id: str
    project_name: str
    owner_id: str
    owner_token: str
    collaborator_id: str
    collaborator_token: str
    outsider_id: str
    outsider_token: str
    subject_set_id: str  # 25 subjects, 1-3 frames each, one with a video frame
    empty_set_id: str
    other_project_id: str
    other_set_id: str  # belongs to other_project_id, not to project_id
    subject_count: int
    image_count: int  # frames the manifest keeps (.jpg/.jpeg/.png)
    skipped_frames: int  # frames left out (the video)
    # Signed-in users who may not export: a `tester` of project_id, and a user with no roles.
    tester_id: str = "45"
    tester_token: str = "demo-tester-token"
    nobody_id: str = "46"
    nobody_token: str = "demo-nobody-token"
    other_project_name: str = OTHER_PROJECT_NAME


def _location(subject_id: str, frame: int, ext: str) -> str:
    h = hashlib.md5(f"sample:{subject_id}:{frame}".encode()).hexdigest()
    return f"{UPLOADS}/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}.{ext}"


def sample_subjects(first_id: int = 91000, count: int = 25) -> list:
    """Camera-trap bursts: 1-3 frames, mostly jpeg, some png, subject #7 has a video."""
    subjects = []
    for i in range(count):
        sid = str(first_id + i)
        frames = 1 + (i * 7) % 3
        locations = []
        for f in range(frames):
            mime, ext = ("image/png", "png") if i % 5 == 4 else ("image/jpeg", "jpeg")
            locations.append({mime: _location(sid, f, ext)})
        if i == 7:
            locations.append({"video/mp4": _location(sid, frames, "mp4")})
        subjects.append(
            {
                "id": sid,
                "locations": locations,
                "metadata": {"#camera": "A", "Filename": f"IMG_{i:04d}.JPG", "#site": "Serengeti S11"},
            }
        )
    return subjects


def load_sample(panoptes: PanoptesStandIn) -> SampleInfo:
    panoptes.add_user("demo-owner-token", "42", "demo-owner")
    panoptes.add_user("demo-collaborator-token", "43", "demo-collaborator")
    panoptes.add_user("demo-outsider-token", "44", "demo-outsider")
    panoptes.add_user("demo-tester-token", "45", "demo-tester")
    panoptes.add_user("demo-nobody-token", "46", "demo-nobody")
    panoptes.add_project(
        "1234", "Snapshot Demo", roles={"42": ["owner"], "43": ["collaborator"], "45": ["tester"]}
    )
    panoptes.add_project("9999", OTHER_PROJECT_NAME, private=True, roles={"44": ["owner"]})
    subjects = sample_subjects()
    panoptes.add_subject_set("5678", "1234", "Camera A - March", subjects)
    panoptes.add_subject_set("5679", "1234", "Camera B - April (empty)", [])
    panoptes.add_subject_set("7777", "9999", "Other project's set", sample_subjects(first_id=97000, count=3))
    frames = [url for s in subjects for loc in s["locations"] for url in loc.values()]
    images = [u for u in frames if u.lower().endswith((".jpg", ".jpeg", ".png"))]
    return SampleInfo(
        "1234",
        "Snapshot Demo",
        "42",
        "demo-owner-token",
        "43",
        "demo-collaborator-token",
        "44",
        "demo-outsider-token",
        "5678",
        "5679",
        "9999",
        "7777",
        len(subjects),
        len(images),
        len(frames) - len(images),
    )
