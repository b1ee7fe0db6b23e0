"""The page's JavaScript is type-checked without a build step: every module asks for it, and
`make lint` runs tsc over all of them (tsconfig.json)."""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATIC = ROOT / "page" / "static"


def test_every_page_module_is_type_checked():
    modules = sorted(STATIC.glob("*.js"))
    assert modules, "no page modules found"
    for module in modules:
        first = module.read_text(encoding="utf-8").splitlines()[0]
        assert first == "// @ts-check", f"{module.name} must start with // @ts-check"
    config = json.loads((ROOT / "tsconfig.json").read_text())
    options = config["compilerOptions"]
    assert options["checkJs"] and options["noEmit"] and options["strict"]
    assert config["include"] == ["page/static/*.js"]


def test_typescript_is_pinned_as_a_dev_dependency():
    package = json.loads((ROOT / "package.json").read_text())
    assert "typescript" not in package.get("dependencies", {})
    version = package["devDependencies"]["typescript"]
    assert version[0].isdigit(), f"pin an exact TypeScript version, not {version!r}"
