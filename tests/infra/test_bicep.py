"""Offline checks of infra/ (Bicep) against the code's own lists of settings and names.

Every `.bicep` file is parsed with pycep-parser (pure Python); the `.bicepparam` files are
parsed by rewriting their `param x = ...` lines as variables (pycep has no bicepparam
grammar). What cannot be checked here: that Azure accepts the template (`az bicep build`
/ `lint` and a what-if deployment run in CI, see .github/workflows/ci.yml and docs/DEPLOY.md).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared import names
from exports.settings import SETTINGS, ExportSettings as Settings
from shared.settings import STORAGE_IDENTITY_SUFFIXES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"

ROLE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
ROLE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ROLE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
ROLE_MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7343e6e24": "Contributor",
    "17d1049b-e5ac-4236-a8f3-47e2a39b6c6f": "Storage Account Contributor",
}

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
LIFECYCLE = "Microsoft.Storage/storageAccounts/managementPolicies"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
SITE = "Microsoft.Web/sites"
SITE_CONFIG = "Microsoft.Web/sites/config"
PLAN = "Microsoft.Web/serverfarms"
INSIGHTS = "Microsoft.Insights/components"
IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"

# App settings that Flex Consumption rejects or that would bring back shared keys / Azure Files.
FORBIDDEN_APP_SETTINGS = {
    names.STORAGE_CONNECTION,  # the plain form is a connection string (with an account key in Azure)
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}


# --------------------------------------------------------------------------------------
# Parsing and resolving
# --------------------------------------------------------------------------------------

def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicepparam_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicepparam"))


@functools.lru_cache(maxsize=None)
def _parser() -> BicepParser:
    return BicepParser()


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


@functools.lru_cache(maxsize=None)
def parse_bicepparam(path: Path) -> tuple[str, dict[str, Any]]:
    """(the `using` target, {param: parsed value}) of a .bicepparam file."""
    using = None
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        match = re.fullmatch(r"using\s+'([^']+)'", stripped)
        if match:
            using = match.group(1)
            continue
        lines.append(re.sub(r"^param(\s+\w+\s*=)", r"var\1", line))
    assert using is not None, f"{path.name}: no `using '...'` line"
    doc = _parser().parse(text="\n".join(lines) + "\n")
    return using, {name: var["value"] for name, var in doc.get("variables", {}).items()}


def main_doc() -> dict[str, Any]:
    return parse(MAIN)


def resources(doc: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {sym: res for sym, res in doc.get("resources", {}).items() if res["type"] == rtype}


def all_resources(rtype: str) -> dict[str, dict[str, Any]]:
    found = {}
    for path in bicep_files():
        for sym, res in resources(parse(path), rtype).items():
            found[f"{path.name}:{sym}"] = res
    return found


def accessor_path(expr: Any) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"], or None when expr is not a plain property access."""
    if isinstance(expr, str):
        return [expr] if re.fullmatch(r"[A-Za-z_]\w*", expr) else None
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "property_accessor":
        operands = expr["operator"]["operands"]
        head, tail = accessor_path(operands["operand_1"]), accessor_path(operands["operand_2"])
        if head is not None and tail is not None:
            return head + tail
    return None


def resolve(expr: Any, doc: dict[str, Any], depth: int = 0) -> Any:
    """Evaluate what can be evaluated offline: parameter defaults, variables, string
    interpolation of those, `join(...)` and `var.key` lookups. Anything else is returned
    unchanged (runtime values such as resource properties)."""
    assert depth < 20, "cyclic reference"
    params, variables = doc.get("parameters", {}), doc.get("variables", {})
    if isinstance(expr, str):
        if expr in params:
            return resolve(params[expr]["default"], doc, depth + 1)
        if expr in variables:
            return resolve(variables[expr]["value"], doc, depth + 1)

        def substitute(match: re.Match[str]) -> str:
            value = resolve(match.group(1), doc, depth + 1)
            return value if isinstance(value, str) and value != match.group(1) else match.group(0)

        return re.sub(r"\$\{([A-Za-z_]\w*)\}", substitute, expr)
    if isinstance(expr, list):
        return [resolve(item, doc, depth + 1) for item in expr]
    if isinstance(expr, dict):
        function = expr.get("function")
        if function and function.get("type") == "join":
            items = resolve(function["parameters"]["input_array"], doc, depth + 1)
            delimiter = resolve(function["parameters"]["delimiter"], doc, depth + 1)
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                return delimiter.join(items)
        path = accessor_path(expr)
        if path and len(path) == 2 and path[0] in variables:
            value = resolve(path[0], doc, depth + 1)
            if isinstance(value, dict) and path[1] in value:
                return resolve(value[path[1]], doc, depth + 1)
    return expr


def identifiers(expr: Any) -> set[str]:
    """Every identifier an expression mentions (plain names, accessors, interpolations)."""
    text = json.dumps(expr)
    return set(re.findall(r"[A-Za-z_]\w*", text))


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def app_settings() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for res in all_resources(SITE_CONFIG).values():
        if res["config"]["name"] == "appsettings":
            duplicate = set(found) & set(res["config"]["properties"])
            assert not duplicate, f"app settings set twice: {sorted(duplicate)}"
            found.update(res["config"]["properties"])
    assert found, "no Microsoft.Web/sites/config 'appsettings' resource"
    return found


def contract_setting_names() -> set[str]:
    return {s.name for s in SETTINGS}


def identity_storage_names() -> set[str]:
    return {f"{names.STORAGE_CONNECTION}__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES}


def the_one(found: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    assert len(found) == 1, f"expected exactly one {what}, found {sorted(found)}"
    return next(iter(found.values()))


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

def test_every_bicep_file_parses():
    files = bicep_files()
    assert MAIN in files
    for path in files:
        doc = parse(path)
        assert doc.get("resources") or doc.get("modules"), f"{path.name} declares nothing"


def test_only_plain_resources_no_registry_modules():
    for path in bicep_files():
        text = strip_comments(path.read_text())
        assert "br:" not in text and "br/" not in text, f"{path.name} uses a registry module"
        assert "ts:" not in text, f"{path.name} uses a template spec"


# --------------------------------------------------------------------------------------
# App settings: every setting the code reads is set
# --------------------------------------------------------------------------------------

def test_every_setting_the_code_reads_is_an_app_setting():
    expected = contract_setting_names() | identity_storage_names()
    missing = expected - set(app_settings())
    assert not missing, f"app settings missing from infra/: {sorted(missing)}"


def test_no_flex_incompatible_or_key_based_app_settings():
    present = FORBIDDEN_APP_SETTINGS & set(app_settings())
    assert not present, f"forbidden app settings: {sorted(present)}"


def test_optional_settings_default_to_the_codes_defaults():
    doc, settings = main_doc(), app_settings()
    for setting in SETTINGS:
        if setting.default is None:
            continue
        value = resolve(settings[setting.name], doc)
        assert value == setting.default, (
            f"{setting.name}: infra default {value!r} != code default {setting.default!r}")


def test_required_settings_come_from_parameters_without_defaults():
    params = main_doc()["parameters"]
    settings = app_settings()
    for setting in SETTINGS:
        if setting.default is not None:
            continue
        ref = settings[setting.name]
        assert isinstance(ref, str) and ref in params, f"{setting.name} must be set from a parameter"
        assert params[ref]["default"] is None, f"{setting.name}: parameter {ref} must be required"


def test_secret_settings_come_from_secure_parameters():
    params = main_doc()["parameters"]
    settings = app_settings()
    secrets = [s for s in SETTINGS if s.secret]
    assert {s.name for s in secrets} >= {"TOKEN_ENCRYPTION_KEY", "TOKEN_ENCRYPTION_KEY_PREVIOUS"}
    for setting in secrets:
        ref = settings[setting.name]
        assert isinstance(ref, str) and ref in params, f"{setting.name} must come from a parameter"
        decorators = {d["type"] for d in params[ref]["decorators"]}
        assert "secure" in decorators, f"parameter {ref} ({setting.name}) must be @secure()"
        assert params[ref]["default"] in (None, ""), f"parameter {ref} must not have a real default"


def test_identity_based_storage_settings():
    settings = app_settings()
    prefix = names.STORAGE_CONNECTION + "__"
    assert settings[prefix + "credential"] == "managedidentity"
    identities = set(all_resources(IDENTITY))
    accounts = {key.split(":")[1] for key in all_resources(STORAGE_ACCOUNT)}
    for service in ("blob", "queue", "table"):
        path = accessor_path(settings[f"{prefix}{service}ServiceUri"])
        assert path and path[0] in accounts and path[1:] == ["properties", "primaryEndpoints", service], (
            f"{prefix}{service}ServiceUri must be the storage account's {service} endpoint")
    client_id = accessor_path(settings[prefix + "clientId"])
    assert client_id and client_id[1:] == ["properties", "clientId"]
    assert any(key.endswith(":" + client_id[0]) for key in identities), (
        "AzureWebJobsStorage__clientId must be the user-assigned identity's client id")


def test_application_insights_uses_entra_auth():
    settings = app_settings()
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(auth, str)
    assert re.fullmatch(r"ClientId=\$\{\w+\.properties\.clientId\};Authorization=AAD", auth), auth
    for res in all_resources(INSIGHTS).values():
        props = res["config"]["properties"]
        assert props["DisableLocalAuth"] is True
        assert props.get("WorkspaceResourceId"), "Application Insights must be workspace-based"


# --------------------------------------------------------------------------------------
# No keys, no shared-key access
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", bicep_files() + bicepparam_files(), ids=lambda p: p.name)
def test_no_account_keys_anywhere(path: Path):
    text = strip_comments(path.read_text())
    for word in ("listKeys", "listAccountSas", "listServiceSas", "listConnectionStrings", "AccountKey",
                 "SharedAccessKey", "StorageAccountConnectionString", "InstrumentationKey"):
        assert word.lower() not in text.lower(), f"{path.name} mentions {word}"
    # The only connection string allowed is Application Insights' (no storage key in it).
    for match in re.finditer(r"[\w.]*connectionstring\w*", text, flags=re.I):
        assert match.group(0).endswith(".properties.ConnectionString"), (
            f"{path.name}: unexpected connection string {match.group(0)!r}")
        assert "appInsights" in match.group(0) or "applicationInsights" in match.group(0)


def test_storage_accounts_are_hardened():
    accounts = all_resources(STORAGE_ACCOUNT)
    assert accounts
    for key, res in accounts.items():
        props = res["config"]["properties"]
        assert props["allowSharedKeyAccess"] is False, key
        assert props["allowBlobPublicAccess"] is False, key
        assert props["minimumTlsVersion"] == "TLS1_2", key
        assert props["supportsHttpsTrafficOnly"] is True, key
        assert props["defaultToOAuthAuthentication"] is True, key


def test_containers_are_private():
    containers = all_resources(CONTAINER)
    assert len(containers) >= 2
    for key, res in containers.items():
        assert res["config"].get("properties", {}).get("publicAccess") == "None", key


# --------------------------------------------------------------------------------------
# Hosting
# --------------------------------------------------------------------------------------

def test_flex_consumption_plan():
    plan = the_one(all_resources(PLAN), "plan")["config"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_is_https_only_python_311_flex():
    doc = main_doc()
    site = the_one(resources(doc, SITE), "function app")["config"]
    assert site["kind"] == "functionapp,linux"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert site["identity"]["type"] == "UserAssigned"

    fac = props["functionAppConfig"]
    assert fac["runtime"] == {"name": "python", "version": "3.11"}
    storage = fac["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert storage["authentication"].get("userAssignedIdentityResourceId")
    # The package container is one of ours: "<blob endpoint>${containerVar}".
    match = re.fullmatch(r"\$\{\w+\.properties\.primaryEndpoints\.blob\}\$\{(\w+)\}", storage["value"])
    assert match, storage["value"]
    container_names = {res["config"]["name"] for res in resources(doc, CONTAINER).values()}
    assert match.group(1) in container_names, "deployment container is not created"

    scale = fac["scaleAndConcurrency"]
    for key in ("instanceMemoryMB", "maximumInstanceCount"):
        assert scale[key] in doc["parameters"], f"{key} must be a parameter"


def test_basic_publishing_credentials_disabled():
    policies = all_resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {res["config"]["name"] for res in policies.values()} == {"ftp", "scm"}
    for res in policies.values():
        assert res["config"]["properties"]["allow"] is False


def test_cors_is_explicit_without_credentials_or_wildcard():
    doc = main_doc()
    site = the_one(resources(doc, SITE), "function app")["config"]
    cors = site["properties"]["siteConfig"]["cors"]
    assert cors["supportCredentials"] is False
    origins = resolve(cors["allowedOrigins"], doc)
    assert origins == ["https://subject-assistant.zooniverse.org"]
    assert "*" not in origins
    # ALLOWED_ORIGINS (read by the code) is the same list.
    assert app_settings()["ALLOWED_ORIGINS"]["function"]["parameters"]["input_array"] == cors["allowedOrigins"]
    for path in bicepparam_files():
        _, values = parse_bicepparam(path)
        if "allowedOrigins" in values:
            assert all(o.startswith("https://") and "*" not in o for o in values["allowedOrigins"]), path.name


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

def role_assignments() -> dict[str, dict[str, Any]]:
    found = {}
    for path in bicep_files():
        doc = parse(path)
        for sym, res in resources(doc, ROLE_ASSIGNMENT).items():
            config = res["config"]
            role = config["properties"]["roleDefinitionId"]
            function = role["function"] if isinstance(role, dict) and "function" in role else None
            assert function and function["type"] == "subscription_resource_id", (
                f"{sym}: roleDefinitionId must be subscriptionResourceId(...)")
            guid = resolve(function["parameters"]["resource_name_1"], doc)
            found[f"{path.name}:{sym}"] = {"role": guid, "config": config, "doc": doc}
    return found


def test_exactly_the_data_plane_roles_are_assigned():
    assignments = role_assignments()
    roles = [a["role"] for a in assignments.values()]
    assert sorted(roles) == sorted([ROLE_BLOB_DATA_OWNER, ROLE_QUEUE_DATA_CONTRIBUTOR,
                                    ROLE_TABLE_DATA_CONTRIBUTOR, ROLE_MONITORING_METRICS_PUBLISHER])
    for key, a in assignments.items():
        config, doc = a["config"], a["doc"]
        assert config["properties"]["principalType"] == "ServicePrincipal", key
        assert config["name"]["function"]["type"] == "guid", f"{key}: name must be guid(...)"
        principal = accessor_path(config["properties"]["principalId"])
        assert principal and resources(doc, IDENTITY).get(principal[0]), (
            f"{key}: principal must be the user-assigned identity")
        scope_type = doc["resources"][config["scope"]]["type"]
        expected_scope = INSIGHTS if a["role"] == ROLE_MONITORING_METRICS_PUBLISHER else STORAGE_ACCOUNT
        assert scope_type == expected_scope, f"{key}: scope {scope_type}, expected {expected_scope}"


@pytest.mark.parametrize("path", bicep_files() + bicepparam_files(), ids=lambda p: p.name)
def test_no_broad_roles_anywhere(path: Path):
    text = path.read_text().lower()
    for guid, role in FORBIDDEN_ROLES.items():
        assert guid not in text, f"{path.name} grants {role}"


# --------------------------------------------------------------------------------------
# Names shared with the code
# --------------------------------------------------------------------------------------

def resolved_names(rtype: str) -> set[str]:
    doc = main_doc()
    return {resolve(res["config"]["name"], doc) for res in resources(doc, rtype).values()}


def test_queue_and_table_names_match_shared_names():
    assert resolved_names(QUEUE) == {names.EXPORT_QUEUE, names.EXPORT_POISON_QUEUE}
    assert resolved_names(TABLE) == {names.EXPORT_TABLE}


def manifest_container() -> dict[str, Any]:
    """The container whose name is the SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME app setting."""
    symbol = app_settings()["SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME"]
    found = [res for res in resources(main_doc(), CONTAINER).values() if res["config"]["name"] == symbol]
    assert len(found) == 1, "the manifest container must be named by the same symbol as the app setting"
    return found[0]


def test_manifest_container_name_matches_the_setting_default():
    default = next(s.default for s in SETTINGS if s.name == "SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME")
    assert resolve(manifest_container()["config"]["name"], main_doc()) == default


def test_lifecycle_rule_deletes_old_manifests_only():
    doc = main_doc()
    policy = the_one(resources(doc, LIFECYCLE), "lifecycle policy")["config"]
    rules = [r for r in policy["properties"]["policy"]["rules"] if r["enabled"] is True]
    assert rules
    container = resolve(manifest_container()["config"]["name"], doc)
    for rule in rules:
        definition = rule["definition"]
        assert resolve(definition["filters"]["prefixMatch"], doc) == [f"{container}/"], rule["name"]
        days = resolve(definition["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"], doc)
        sas_hours_max = 168  # settings.MANIFEST_SAS_HOURS upper bound (7 days)
        assert isinstance(days, int) and days * 24 > sas_hours_max, "manifests must outlive their SAS"


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------

def test_outputs_name_the_app_and_leak_no_secret():
    for path in bicep_files():
        doc = parse(path)
        secure = {name for name, p in doc.get("parameters", {}).items()
                  if any(d["type"] == "secure" for d in p["decorators"])}
        for name, output in doc.get("outputs", {}).items():
            assert not identifiers(output["value"]) & secure, f"output {name} exposes a secure parameter"
            assert not {d["type"] for d in output["decorators"]} & {"secure"}, name
            assert "key" not in name.lower() and "secret" not in name.lower(), name
    outputs = main_doc()["outputs"]
    assert set(outputs) == {"functionAppName", "defaultHostName", "storageAccountName", "identityClientId"}


# --------------------------------------------------------------------------------------
# Parameter files
# --------------------------------------------------------------------------------------

def test_parameter_files_exist_for_staging_and_production():
    assert {p.name for p in bicepparam_files()} >= {"main.staging.bicepparam", "main.production.bicepparam"}


@pytest.mark.parametrize("path", bicepparam_files(), ids=lambda p: p.name)
def test_parameter_file_sets_every_required_parameter(path: Path):
    using, values = parse_bicepparam(path)
    target = (path.parent / using).resolve()
    assert target == MAIN
    params = main_doc()["parameters"]
    unknown = set(values) - set(params)
    assert not unknown, f"{path.name} sets unknown parameters {sorted(unknown)}"
    required = {name for name, p in params.items() if p["default"] is None}
    assert required <= set(values), f"{path.name} misses {sorted(required - set(values))}"
    for name, value in values.items():
        if any(d["type"] == "secure" for d in params[name]["decorators"]):
            function = value.get("function", {}) if isinstance(value, dict) else {}
            assert function.get("type") == "readEnvironmentVariable", (
                f"{path.name}: secure parameter {name} must come from readEnvironmentVariable(...)")


def test_staging_uses_panoptes_staging_and_production_the_default():
    _, staging = parse_bicepparam(INFRA / "main.staging.bicepparam")
    _, production = parse_bicepparam(INFRA / "main.production.bicepparam")
    assert staging["panoptesUrl"] == "https://panoptes-staging.zooniverse.org"
    assert production.get("panoptesUrl", "https://www.zooniverse.org") == "https://www.zooniverse.org"
    assert staging["environmentName"] != production["environmentName"]


# --------------------------------------------------------------------------------------
# local.settings.sample.json and docs
# --------------------------------------------------------------------------------------

def test_local_settings_sample_holds_every_setting_and_is_valid():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    values = sample["Values"]
    missing = (contract_setting_names() | {names.STORAGE_CONNECTION}) - set(values)
    assert not missing, f"local.settings.sample.json misses {sorted(missing)}"
    assert values[names.STORAGE_CONNECTION] == "UseDevelopmentStorage=true"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert all(isinstance(v, str) for v in values.values()), "local settings values must be strings"
    for setting in SETTINGS:
        if setting.default is not None and setting.name != "PANOPTES_URL":
            assert values[setting.name] == setting.default, setting.name
    assert "local" in values["TOKEN_ENCRYPTION_KEY"], "the sample key must look fake"
    Settings.from_env(values)  # raises SettingsError naming any bad setting
    cors = sample["Host"]["CORS"]
    assert "*" not in cors and cors == values["ALLOWED_ORIGINS"]


def test_deploy_doc_explains_every_parameter():
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    undocumented = [name for name in main_doc()["parameters"] if f"`{name}`" not in text]
    assert not undocumented, f"docs/DEPLOY.md does not explain {undocumented}"
    for setting in SETTINGS:
        assert setting.name in text, f"docs/DEPLOY.md does not mention {setting.name}"


# --------------------------------------------------------------------------------------
# checkov (its own venv: it pins pycep-parser 0.5.x; `make test` installs it and sets CHECKOV)
# --------------------------------------------------------------------------------------

def _checkov_command() -> list[str] | None:
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    # A checkov installed elsewhere (its own venv), e.g. CHECKOV=/tmp/checkov-venv/bin/checkov.
    explicit = os.environ.get("CHECKOV")
    if explicit:
        # `make test` installs checkov and sets this: missing then is a failure, not a skip.
        assert shutil.which(explicit), f"CHECKOV={explicit} is not an executable"
        return [explicit]
    return None


def test_checkov_finds_nothing_unjustified(tmp_path: Path):
    command = _checkov_command()
    if command is None:
        pytest.skip("checkov is not importable (set CHECKOV=/path/to/checkov to run it from another venv)")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    result = subprocess.run(
        command + ["-d", str(INFRA), "--framework", "bicep", "--skip-download", "--output", "json",
                   "--compact"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    for rep in reports:
        summary = rep["summary"]
        assert summary["parsing_errors"] == 0, "checkov could not parse infra/"
        results = rep["results"]
        failed = [f"{c['check_id']} {c['resource']}" for c in results.get("failed_checks", [])]
        assert not failed, f"checkov findings (fix, or justify with // checkov:skip=ID: reason): {failed}"
        for skipped in results.get("skipped_checks", []):
            comment = skipped.get("check_result", {}).get("suppress_comment", "")
            assert comment and comment != "No comment provided", f"{skipped['check_id']} skipped without reason"
