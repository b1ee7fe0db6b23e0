"""The README documents every setting the code reads, with the code's default."""

import pathlib
import re

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
