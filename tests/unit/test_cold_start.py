"""A cold start imports function_app before anything else: that import must do only what
indexing needs. The handlers and what they use (the storage SDK, Panoptes and ML code,
cryptography, telemetry) load on first use (exports/blueprint.py); `make bench` section 6
measures the time, this pins what is left out."""

import json
import subprocess
import sys

from devtools.azurite import ROOT

# Top-level packages and modules a cold start's import must not load.
NOT_AT_IMPORT = (
    "azure.core",
    "azure.storage",
    "azure.data",
    "azure.identity",
    "azure.monitor",
    "opentelemetry",
    "urllib3",
    "requests",
    "cryptography",
    "ijson",
    "cachetools",
    "exports.api",
    "exports.worker",
    "exports.poller",
    "exports.tracking",
    "exports.services",
    "exports.access",
    "exports.store",
    "exports.panoptes",
    "exports.ml_service",
    "exports.blob_writer",
    "exports.results",
    "exports.openapi",
    "shared.storage",
    "shared.outbound",
    "shared.crypto",
)


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_importing_function_app_loads_only_what_indexing_needs():
    modules = modules_after("import function_app\nfunction_app.app.get_functions()")
    assert loaded(modules, "azure.functions") and "exports.blueprint" in modules
    early = [name for name in NOT_AT_IMPORT if loaded(modules, name)]
    assert early == [], f"imported by `import function_app` (load them on first use): {early}"


def test_the_probe_sees_what_the_handlers_load():
    """The check above can fail: importing a handler loads what it must not load early."""
    modules = modules_after("import function_app\nimport exports.api")
    assert loaded(modules, "azure.storage") and loaded(modules, "exports.services")
