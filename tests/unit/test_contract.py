"""The contract's words are declared once (exports/contract.py, shared/errors.py) and each is used:
a code the source uses but does not declare is a name mypy refuses (codes are StrEnum members, and
ApiError and model.fail take only those); a code declared but never used is found here, by walking
the source's syntax trees, not by matching text."""

from __future__ import annotations

import ast
import pathlib
from enum import StrEnum

import pytest

from exports import contract
from shared import errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
DECLARED_IN = {ROOT / "exports" / "contract.py", ROOT / "shared" / "errors.py"}
ENUMS: list[type[StrEnum]] = [
    contract.Status,
    contract.MlStatus,
    contract.CallbackState,
    contract.Failure,
    contract.ErrorCode,
    errors.CommonError,
]


def references() -> set[tuple[str, str]]:
    """(enum name, member name) of every `Enum.MEMBER` in the app's source (not its declarations)."""
    found: set[tuple[str, str]] = set()
    for folder in ("exports", "shared", "page"):
        for path in (ROOT / folder).rglob("*.py"):
            if path in DECLARED_IN:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    found.add((node.value.id, node.attr))
                    continue
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                    found.add((node.value.attr, node.attr))  # contract.Status.X
    return found


USED = references()


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_declared_word_is_used_by_the_source(enum):
    """Listing a vocabulary whole (the OpenAPI document does) is not a use: each word must be
    decided or answered somewhere in the code."""
    unused = [m.name for m in enum if (enum.__name__, m.name) not in USED]
    assert unused == [], f"{enum.__name__} members never used in the source: {unused}"


def test_every_api_error_code_has_its_status_and_meaning():
    assert set(contract.ERRORS) == set(contract.ErrorCode) | {errors.CommonError.INTERNAL_ERROR}
    for code, (status, meaning) in contract.ERRORS.items():
        assert 400 <= status < 600 and meaning.endswith("."), code


def test_words_are_unique_within_each_vocabulary():
    for enum in ENUMS:
        values = [m.value for m in enum]
        assert len(values) == len(set(values)), enum.__name__


def test_the_check_finds_an_unused_word():
    """The walk must be able to fail: a member nobody references is reported."""

    class Planted(StrEnum):
        USED_ONE = "used_one"
        NEVER_USED = "never_used"

    used = USED | {("Planted", "USED_ONE")}
    assert [m.name for m in Planted if ("Planted", m.name) not in used] == ["NEVER_USED"]
