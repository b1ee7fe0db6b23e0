"""sa-export as a package of its own: what `pip install ./client` builds, its dependency ranges
against the exact pins the tests run with, and its exit codes as documented."""

import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement

from sa_export import cli
from sa_export.outcome import Exit
from tests.tracing import untraced_env

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
PROJECT = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]


def test_the_wheel_holds_the_package_the_command_and_the_ranges(tmp_path):
    # Offline (the build backend already in this environment, no dependencies fetched), from a
    # copy of the checkout's client/ so that the build leaves nothing in it.
    source = shutil.copytree(
        CLIENT, tmp_path / "client", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            source,
        ],
        check=True,
        capture_output=True,
        env=untraced_env(),
    )
    [wheel] = tmp_path.glob("sa_export-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    modules = {"__init__", "__main__", "cli", "credentials", "outcome", "render", "service", "waiting"}
    assert {f"sa_export/{m}.py" for m in modules} <= names
    assert not any(n.startswith(("tests/", "exports/", "shared/")) for n in names)
    assert "sa-export = sa_export.cli:main" in entry_points
    requires = set(re.findall(r"^Requires-Dist: (.+)$", metadata, re.M))
    assert {"requests<3,>=2.31", "rich<16,>=13.7", 'panoptes-client<2,>=1.6; extra == "signin"'} == requires


def pins() -> dict[str, str]:
    found = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if match := re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line):
                found[match[1].lower()] = match[2]
    return found


def test_every_dependency_is_pinned_for_the_tests_within_its_range():
    pinned = pins()
    dependencies = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["signin"]]
    for text in dependencies:
        requirement = Requirement(text)
        assert requirement.name.lower() in pinned, f"{requirement.name} has no exact pin"
        assert requirement.specifier.contains(pinned[requirement.name.lower()]), (
            text,
            pinned[requirement.name],
        )
    assert "-e ./client[signin]" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def test_the_exit_codes_are_documented_where_people_look():
    codes = {int(code) for code in Exit}
    table = re.findall(r"^\| (\d+) \| ", (CLIENT / "README.md").read_text(), re.M)
    assert sorted(map(int, table)) == sorted(codes)
    epilog = re.findall(r"^  (\d+) +\S", cli.EXIT_CODES, re.M)
    assert sorted(map(int, epilog)) == sorted(codes)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The command line") :]
    section = section[: section.index("\n## ")]
    assert {int(c) for c in re.findall(r"`(\d+)`", section)} == codes
