"""The README documents every setting the code reads, with the code's default."""

import pathlib
import re
import subprocess

from devtools import docs
from devtools.docs import ALL_SETTINGS as SETTINGS

README = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_settings_table_is_generated_from_the_declarations():
    assert docs.render(README) == README, "README.md is stale: run `make docs`"


def test_every_setting_is_documented_with_its_default():
    rows = dict(re.findall(r"^\| `([A-Za-z_]+)` \| ([^|]+) \|", README, re.M))
    for setting in SETTINGS:
        assert setting.name in rows, f"{setting.name} missing from the README settings table"
        documented = rows[setting.name].strip()
        if setting.default is None:
            assert documented == "(required)", setting.name
        elif setting.default == "":
            assert documented == "(empty)", setting.name
        else:
            assert documented == f"`{setting.default}`", setting.name
    assert rows["AzureWebJobsStorage"].strip() == "(required)"


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


REFERENCE = re.compile(
    r"(?<![\w/.-])((?:exports|shared|page|devtools|standins|tests|docs|infra|bench|ops|client|scripts)"
    r"/[\w./-]*\.(?:bicepparam|bicep|json|js|py|md|css|html|toml|txt))\b"
)
GENERATED = ("bench/results/",)  # written by `make bench`, not tracked


def test_every_path_the_docs_and_comments_name_exists():
    """A reference to a file of the repository must point at something in it."""
    root = pathlib.Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True)
    missing = []
    for name in tracked.stdout.split():
        if not name.endswith((".py", ".md", ".bicep", ".js", ".toml", ".html")):
            continue
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        for ref in REFERENCE.findall(text):
            ref = ref.rstrip(".")
            if not ref.startswith(GENERATED) and not (root / ref).exists():
                missing.append(f"{name}: {ref}")
    assert missing == []
