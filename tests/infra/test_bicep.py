"""Offline checks of infra/ (Bicep) against the code's own lists of settings and names.

`infra/main.bicep` declares the parameters and calls the modules in `infra/app/`; these
checks read the whole template: every resource of main.bicep and of every module it calls,
and they follow a value across files (a module's parameter to what main.bicep passes, a
module's output to its value) down to main.bicep's parameters and their defaults.

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
from typing import Any, NamedTuple

import pytest
from pycep import BicepParser

from devtools.docs import ALL_SETTINGS as SETTINGS
from exports.settings import ExportSettings as Settings
from shared import names
from shared.settings import STORAGE_IDENTITY_SUFFIXES
from tests.tracing import untraced_env

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


def rel(path: Path) -> str:
    """A file's name as written in messages and test ids: its path under infra/."""
    return path.relative_to(INFRA).as_posix()


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


@functools.cache
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


# Modules ------------------------------------------------------------------------------


def module_target(caller: Path, module: dict[str, Any]) -> Path:
    """The file a `module` declaration of `caller` deploys."""
    assert module["type"] == "local", f"{rel(caller)}: module {module['detail']['path']} is not a local file"
    return (caller.parent / module["detail"]["path"]).resolve()


class ModuleCall(NamedTuple):
    caller: Path  # the file with the `module` declaration
    symbol: str  # its symbolic name there
    target: Path  # the module's file

    @property
    def config(self) -> dict[str, Any]:
        return parse(self.caller)["modules"][self.symbol]["config"]

    @property
    def args(self) -> dict[str, Any]:
        return self.config.get("params", {})


@functools.cache
def module_calls() -> tuple[ModuleCall, ...]:
    """Every module call of the template: main.bicep's, then its modules' (breadth first)."""
    calls: list[ModuleCall] = []
    seen: list[Path] = []
    todo = [MAIN]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        for symbol, module in parse(path).get("modules", {}).items():
            target = module_target(path, module)
            assert target.is_file(), (
                f"{rel(path)}: module {symbol} calls a missing file {module['detail']['path']}"
            )
            calls.append(ModuleCall(path, symbol, target))
            todo.append(target)
    return tuple(calls)


def template_files() -> list[Path]:
    """The whole template: main.bicep and every module it calls, directly or not."""
    return [MAIN] + sorted({call.target for call in module_calls()} - {MAIN})


def call_of(path: Path) -> ModuleCall:
    """The one module call that deploys `path` (a value passed to a module has one source)."""
    calls = [call for call in module_calls() if call.target == path]
    assert len(calls) == 1, f"{rel(path)} must be called exactly once, is called by {calls}"
    return calls[0]


def module_dependencies(call: ModuleCall) -> set[str]:
    """Symbols of the sibling modules a module call waits for: its dependsOn entries and the
    modules whose outputs its arguments use, and, in turn, what those wait for."""
    siblings = parse(call.caller).get("modules", {})
    direct = {d for d in call.config.get("dependsOn", []) if d in siblings}
    text = json.dumps(call.args)
    direct |= {m for m in siblings if f'"operand_1": "{m}"' in text or "${" + m + "." in text}
    found = set(direct)
    for symbol in direct:
        found |= module_dependencies(
            ModuleCall(call.caller, symbol, module_target(call.caller, siblings[symbol]))
        )
    return found


# Resources ----------------------------------------------------------------------------


class Found(NamedTuple):
    path: Path  # the file that declares the resource
    symbol: str
    resource: dict[str, Any]  # as parsed: type, api_version, existing, config

    @property
    def config(self) -> dict[str, Any]:
        return self.resource["config"]

    @property
    def key(self) -> str:
        return f"{rel(self.path)}:{self.symbol}"


def resources(doc: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    """The resources of type rtype a file creates (not its `existing` look-ups)."""
    return {
        sym: res
        for sym, res in doc.get("resources", {}).items()
        if res["type"] == rtype and not res.get("existing")
    }


def find_resources(rtype: str) -> list[Found]:
    """Every resource of type rtype the template creates, in main.bicep or any module."""
    return [
        Found(path, sym, res)
        for path in template_files()
        for sym, res in resources(parse(path), rtype).items()
    ]


def all_resources(rtype: str) -> dict[str, dict[str, Any]]:
    return {found.key: found.resource for found in find_resources(rtype)}


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


def trace(expr: Any, path: Path, depth: int = 0) -> tuple[Path, Any]:
    """Where the value of `expr` (written in `path`) is decided, as (file, expression).

    A module's parameter leads to the argument its caller passes (or to the parameter's own
    default when none is passed), a variable to its value, `<variable>.<key>` to that entry,
    `<module>.outputs.<name>` to that output's value in the module, `<resource>.name` to the
    resource's name. Stops at main.bicep's parameters (what a deployment sets) and at anything
    else (literals, interpolations, runtime values such as resource properties). Two
    expressions with the same trace are the same value in every deployment."""
    assert depth < 50, "cyclic reference"
    doc = parse(path)
    params, variables = doc.get("parameters", {}), doc.get("variables", {})
    if isinstance(expr, str):
        if expr in params and path != MAIN:
            call = call_of(path)
            if expr in call.args:
                return trace(call.args[expr], call.caller, depth + 1)
            assert params[expr]["default"] is not None, (
                f"{rel(call.caller)}: module {call.symbol} does not pass its required parameter {expr}"
            )
            return trace(params[expr]["default"], path, depth + 1)
        if expr in variables:
            return trace(variables[expr]["value"], path, depth + 1)
        return path, expr
    chain = accessor_path(expr)
    if chain and len(chain) == 2 and chain[0] in variables:
        where, value = trace(chain[0], path, depth + 1)
        if isinstance(value, dict) and chain[1] in value:
            return trace(value[chain[1]], where, depth + 1)
    modules = doc.get("modules", {})
    if chain and len(chain) == 3 and chain[0] in modules and chain[1] == "outputs":
        target = module_target(path, modules[chain[0]])
        return trace(parse(target)["outputs"][chain[2]]["value"], target, depth + 1)
    declared = doc.get("resources", {})
    if chain and len(chain) == 2 and chain[0] in declared and chain[1] == "name":
        return trace(declared[chain[0]]["config"]["name"], path, depth + 1)
    return path, expr


def resolve(expr: Any, path: Path, depth: int = 0) -> Any:
    """Evaluate what can be evaluated offline, as a deployment would without a parameter
    file: `trace`, then main.bicep's parameter defaults, string interpolation of those,
    `join(...)` and lists. Anything else is returned unchanged (runtime values such as
    resource properties)."""
    assert depth < 50, "cyclic reference"
    where, expr = trace(expr, path)
    if isinstance(expr, str):
        params = parse(where).get("parameters", {})
        if where == MAIN and expr in params:
            return resolve(params[expr]["default"], MAIN, depth + 1)

        def substitute(match: re.Match[str]) -> str:
            value = resolve(match.group(1), where, depth + 1)
            return value if isinstance(value, str) and value != match.group(1) else match.group(0)

        return re.sub(r"\$\{([A-Za-z_]\w*)\}", substitute, expr)
    if isinstance(expr, list):
        return [resolve(item, where, depth + 1) for item in expr]
    if isinstance(expr, dict):
        function = expr.get("function")
        if function and function.get("type") == "join":
            items = resolve(function["parameters"]["input_array"], where, depth + 1)
            delimiter = resolve(function["parameters"]["delimiter"], where, depth + 1)
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                return delimiter.join(items)
    return expr


def parameter_chain(name: str, path: Path) -> list[tuple[Path, str]]:
    """A parameter, and while it is a module's and its caller passes a parameter of its own,
    that one too: [(module file, name), ..., (main.bicep, name)] for a value set by a deployment."""
    chain = [(path, name)]
    while path != MAIN:
        call = call_of(path)
        arg = call.args.get(name)
        if not (isinstance(arg, str) and arg in parse(call.caller).get("parameters", {})):
            break
        path, name = call.caller, arg
        chain.append((path, name))
    return chain


def real_resource(path: Path, symbol: str) -> Found:
    """The resource a symbol of `path` stands for: the resource it declares or, for an
    `existing` look-up, the one resource of the template with the same type and name."""
    res = parse(path)["resources"][symbol]
    if not res.get("existing"):
        return Found(path, symbol, res)
    name = trace(res["config"]["name"], path)
    found = [f for f in find_resources(res["type"]) if trace(f.config["name"], f.path) == name]
    assert len(found) == 1, (
        f"{rel(path)}: existing {symbol} must name one resource the template creates, names {[f.key for f in found]}"
    )
    return found[0]


def identifiers(expr: Any) -> set[str]:
    """Every identifier an expression mentions (plain names, accessors, interpolations)."""
    text = json.dumps(expr)
    return set(re.findall(r"[A-Za-z_]\w*", text))


def referenced(expr: Any) -> set[str]:
    """The identifiers an expression reads: those of its values, not of its object keys
    (`allowedOrigins: [...]` names a module argument, it does not read the parameter),
    except keys that interpolate (`'${appIdentity.id}': {}`)."""
    if isinstance(expr, str):
        return set(re.findall(r"[A-Za-z_]\w*", expr))
    if isinstance(expr, list):
        return set().union(*map(referenced, expr)) if expr else set()
    if isinstance(expr, dict):
        found = set().union(*map(referenced, expr.values())) if expr else set()
        for key in expr:
            if "${" in key:
                found |= referenced(key)
        return found
    return set()


def secure_parameters(doc: dict[str, Any]) -> set[str]:
    return {
        name
        for name, p in doc.get("parameters", {}).items()
        if any(d["type"] == "secure" for d in p["decorators"])
    }


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def located_app_settings() -> dict[str, tuple[Path, Any]]:
    """{app setting: (file that sets it, its expression there)}."""
    found: dict[str, tuple[Path, Any]] = {}
    for config in find_resources(SITE_CONFIG):
        if config.config["name"] == "appsettings":
            duplicate = set(found) & set(config.config["properties"])
            assert not duplicate, f"app settings set twice: {sorted(duplicate)}"
            found.update({name: (config.path, value) for name, value in config.config["properties"].items()})
    assert found, "no Microsoft.Web/sites/config 'appsettings' resource"
    return found


def app_settings() -> dict[str, Any]:
    return {name: value for name, (_, value) in located_app_settings().items()}


def contract_setting_names() -> set[str]:
    return {s.name for s in SETTINGS}


def identity_storage_names() -> set[str]:
    return {f"{names.STORAGE_CONNECTION}__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES}


def the_one(found: dict[str, Any] | list[Any], what: str) -> Any:
    items = list(found.values()) if isinstance(found, dict) else list(found)
    assert len(items) == 1, (
        f"expected exactly one {what}, found {sorted(found) if isinstance(found, dict) else [f.key for f in items]}"
    )
    return items[0]


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def test_every_bicep_file_parses():
    files = bicep_files()
    assert MAIN in files
    for path in files:
        doc = parse(path)
        assert doc.get("resources") or doc.get("modules"), f"{path.name} declares nothing"


def test_every_bicep_file_is_part_of_the_template():
    """What the tests read is what a deployment of main.bicep deploys: every .bicep file is
    main.bicep or a module it calls (directly or not), each module is called once."""
    files = set(bicep_files())
    reached = set(template_files())
    assert reached <= files
    unused = sorted(rel(path) for path in files - reached)
    assert not unused, f"not called from main.bicep: {unused}"
    for path in reached - {MAIN}:
        call_of(path)


def test_module_calls_match_the_modules_parameters():
    """What `az bicep build` would reject, checked offline: unknown or missing arguments, two
    module deployments with one name. And no `scope`: every module deploys to main.bicep's
    resource group."""
    for caller in template_files():
        calls = [call for call in module_calls() if call.caller == caller]
        deployment_names = [call.config.get("name") for call in calls]
        assert all(deployment_names), f"{rel(caller)}: every module call needs a deployment name"
        assert len(set(map(json.dumps, deployment_names))) == len(deployment_names), (
            f"{rel(caller)}: module deployment names repeat: {deployment_names}"
        )
        for call in calls:
            where = f"{rel(caller)}: module {call.symbol} ({rel(call.target)})"
            assert "scope" not in call.config, f"{where} must deploy to the resource group of main.bicep"
            declared = parse(call.target).get("parameters", {})
            unknown = set(call.args) - set(declared)
            assert not unknown, f"{where} passes undeclared parameters {sorted(unknown)}"
            missing = {name for name, p in declared.items() if p["default"] is None} - set(call.args)
            assert not missing, f"{where} does not pass required parameters {sorted(missing)}"


def test_secure_values_reach_modules_only_as_secure_parameters():
    """A secret passed to a module parameter without @secure() would be stored in clear in
    the nested deployment's history."""
    for call in module_calls():
        caller_secure = secure_parameters(parse(call.caller))
        target_secure = secure_parameters(parse(call.target))
        for name, arg in call.args.items():
            if identifiers(arg) & caller_secure:
                assert name in target_secure, (
                    f"{rel(call.caller)}: module {call.symbol} passes a secure value to {name}, "
                    f"which is not @secure() in {rel(call.target)}"
                )


def test_modules_that_use_another_modules_resource_deploy_after_it():
    """A module that looks up a resource with `existing` is deployed after the module that
    creates it (dependsOn, or an argument that uses that module's outputs)."""
    for path in template_files():
        for symbol, res in parse(path).get("resources", {}).items():
            if not res.get("existing"):
                continue
            real = real_resource(path, symbol)
            if real.path == path:
                continue
            consumer, producer = call_of(path), call_of(real.path)
            assert consumer.caller == producer.caller, (
                f"{rel(path)}: {symbol} is created by {rel(real.path)}, which another file calls"
            )
            assert producer.symbol in module_dependencies(consumer), (
                f"{rel(consumer.caller)}: module {consumer.symbol} uses {real.key} "
                f"but does not depend on module {producer.symbol}"
            )


def test_every_parameter_is_used():
    """A parameter nothing reads (e.g. main.bicep passing a literal where it should pass its
    parameter) would silently ignore what the parameter files set (bicep lint: no-unused-params)."""
    for path in template_files():
        doc = parse(path)
        used = referenced({part: value for part, value in doc.items() if part != "parameters"})
        unused = sorted(set(doc.get("parameters", {})) - used)
        assert not unused, f"{rel(path)}: parameters never used: {unused}"


def test_only_plain_resources_no_registry_modules():
    # A registry module or template spec is a string 'br:...', 'br/...', 'ts:...' or 'ts/...'
    # (matched as a string's start: `resultsAllowedHosts: ...` is an argument, not a spec).
    for path in bicep_files():
        text = strip_comments(path.read_text())
        assert not re.search(r"'br[:/]", text), f"{rel(path)} uses a registry module"
        assert not re.search(r"'ts[:/]", text), f"{rel(path)} uses a template spec"
        for symbol, module in parse(path).get("modules", {}).items():
            assert module["type"] == "local", f"{rel(path)}: module {symbol} is not a local file"


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
    settings = located_app_settings()
    for setting in SETTINGS:
        if setting.default is None:
            continue
        path, expr = settings[setting.name]
        value = resolve(expr, path)
        assert value == setting.default, (
            f"{setting.name}: infra default {value!r} != code default {setting.default!r}"
        )


def test_required_settings_come_from_parameters_without_defaults():
    params = main_doc()["parameters"]
    settings = located_app_settings()
    for setting in SETTINGS:
        if setting.default is not None:
            continue
        path, ref = settings[setting.name]
        assert isinstance(ref, str) and ref in parse(path)["parameters"], (
            f"{setting.name} must be set from a parameter"
        )
        where, top = trace(ref, path)
        assert where == MAIN and isinstance(top, str) and top in params, (
            f"{setting.name} must be set from a main.bicep parameter"
        )
        assert params[top]["default"] is None, f"{setting.name}: parameter {top} must be required"


def test_secret_settings_come_from_secure_parameters():
    settings = located_app_settings()
    secrets = [s for s in SETTINGS if s.secret]
    assert {s.name for s in secrets} >= {"TOKEN_ENCRYPTION_KEY", "TOKEN_ENCRYPTION_KEY_PREVIOUS"}
    for setting in secrets:
        path, ref = settings[setting.name]
        assert isinstance(ref, str) and ref in parse(path)["parameters"], (
            f"{setting.name} must come from a parameter"
        )
        chain = parameter_chain(ref, path)
        assert chain[-1][0] == MAIN, (
            f"{setting.name} must come from a main.bicep parameter, stops at {chain[-1]}"
        )
        for where, name in chain:  # every parameter it passes through, main.bicep's last
            param = parse(where)["parameters"][name]
            decorators = {d["type"] for d in param["decorators"]}
            assert "secure" in decorators, (
                f"parameter {name} of {rel(where)} ({setting.name}) must be @secure()"
            )
            assert param["default"] in (None, ""), (
                f"parameter {name} of {rel(where)} must not have a real default"
            )


def test_identity_based_storage_settings():
    settings = located_app_settings()
    prefix = names.STORAGE_CONNECTION + "__"
    assert settings[prefix + "credential"][1] == "managedidentity"
    identities = set(all_resources(IDENTITY))
    accounts = set(all_resources(STORAGE_ACCOUNT))

    def resource_property(setting: str) -> tuple[str | None, list[str]]:
        """(key of the resource the setting reads, the property path), across modules."""
        where, expr = trace(*reversed(settings[setting]))
        chain = accessor_path(expr) or []
        if not chain or chain[0] not in parse(where).get("resources", {}):
            return None, chain
        return real_resource(where, chain[0]).key, chain[1:]

    for service in ("blob", "queue", "table"):
        key, prop = resource_property(f"{prefix}{service}ServiceUri")
        assert key in accounts and prop == ["properties", "primaryEndpoints", service], (
            f"{prefix}{service}ServiceUri must be the storage account's {service} endpoint"
        )
    key, prop = resource_property(prefix + "clientId")
    assert prop == ["properties", "clientId"]
    assert key in identities, "AzureWebJobsStorage__clientId must be the user-assigned identity's client id"


def test_application_insights_uses_entra_auth():
    settings = located_app_settings()
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    path, auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(auth, str)
    match = re.fullmatch(r"ClientId=\$\{(\w+)\.properties\.clientId\};Authorization=AAD", auth)
    assert match, auth
    assert real_resource(path, match.group(1)).key in all_resources(IDENTITY), (
        "ClientId must be the app's identity"
    )
    for res in all_resources(INSIGHTS).values():
        props = res["config"]["properties"]
        assert props["DisableLocalAuth"] is True
        assert props.get("WorkspaceResourceId"), "Application Insights must be workspace-based"


# --------------------------------------------------------------------------------------
# No keys, no shared-key access
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files() + bicepparam_files(), ids=rel)
def test_no_account_keys_anywhere(path: Path):
    text = strip_comments(path.read_text())
    for word in (
        "listKeys",
        "listAccountSas",
        "listServiceSas",
        "listConnectionStrings",
        "AccountKey",
        "SharedAccessKey",
        "StorageAccountConnectionString",
        "InstrumentationKey",
    ):
        assert word.lower() not in text.lower(), f"{path.name} mentions {word}"
    # The only connection string allowed is Application Insights' (no storage key in it).
    for match in re.finditer(r"[\w.]*connectionstring\w*", text, flags=re.I):
        assert match.group(0).endswith(".properties.ConnectionString"), (
            f"{path.name}: unexpected connection string {match.group(0)!r}"
        )
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
    found = the_one(find_resources(SITE), "function app")
    site = found.config
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
    match = re.fullmatch(r"\$\{(\w+)\.properties\.primaryEndpoints\.blob\}\$\{(\w+)\}", storage["value"])
    assert match, storage["value"]
    assert real_resource(found.path, match.group(1)).key in all_resources(STORAGE_ACCOUNT)
    container_names = [trace(c.config["name"], c.path) for c in find_resources(CONTAINER)]
    assert trace(match.group(2), found.path) in container_names, "deployment container is not created"

    scale = fac["scaleAndConcurrency"]
    for key in ("instanceMemoryMB", "maximumInstanceCount"):
        where, top = trace(scale[key], found.path)
        assert where == MAIN and top in main_doc()["parameters"], f"{key} must be a parameter"


def deploys_after(later: Found, earlier: Found) -> bool:
    """Whether `later` is deployed after `earlier`: in one file, by dependsOn or by a
    reference to it; across files, because the module of `later` depends on the module of
    `earlier` (see module_dependencies)."""
    if later.path == earlier.path:
        return earlier.symbol in later.config.get("dependsOn", []) or earlier.symbol in identifiers(
            later.config
        )
    if later.path == MAIN or earlier.path == MAIN:
        return False
    consumer, producer = call_of(later.path), call_of(earlier.path)
    return consumer.caller == producer.caller and producer.symbol in module_dependencies(consumer)


def test_function_app_starts_after_its_roles_and_package_container():
    """The host needs its storage and telemetry roles and the package container from its first start."""
    site = the_one(find_resources(SITE), "function app")
    value = site.config["properties"]["functionAppConfig"]["deployment"]["storage"]["value"]
    package = trace(re.fullmatch(r".*\$\{(\w+)\}", value).group(1), site.path)
    containers = [c for c in find_resources(CONTAINER) if trace(c.config["name"], c.path) == package]
    needed = find_resources(ROLE_ASSIGNMENT) + containers
    assert len(needed) == 5, [f.key for f in needed]
    for earlier in needed:
        assert deploys_after(site, earlier), f"the function app may start before {earlier.key}"


def test_basic_publishing_credentials_disabled():
    policies = all_resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {res["config"]["name"] for res in policies.values()} == {"ftp", "scm"}
    for res in policies.values():
        assert res["config"]["properties"]["allow"] is False


def test_cors_is_explicit_without_credentials_or_wildcard():
    found = the_one(find_resources(SITE), "function app")
    cors = found.config["properties"]["siteConfig"]["cors"]
    assert cors["supportCredentials"] is False
    origins = resolve(cors["allowedOrigins"], found.path)
    assert origins == ["https://subject-assistant.zooniverse.org"]
    assert "*" not in origins
    # ALLOWED_ORIGINS (read by the code) is the same list.
    path, allowed = located_app_settings()["ALLOWED_ORIGINS"]
    assert trace(allowed["function"]["parameters"]["input_array"], path) == trace(
        cors["allowedOrigins"], found.path
    )
    for path in bicepparam_files():
        _, values = parse_bicepparam(path)
        if "allowedOrigins" in values:
            assert all(o.startswith("https://") and "*" not in o for o in values["allowedOrigins"]), path.name


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------


def role_assignments() -> dict[str, dict[str, Any]]:
    found = {}
    for assignment in find_resources(ROLE_ASSIGNMENT):
        config = assignment.config
        role = config["properties"]["roleDefinitionId"]
        function = role["function"] if isinstance(role, dict) and "function" in role else None
        assert function and function["type"] == "subscription_resource_id", (
            f"{assignment.key}: roleDefinitionId must be subscriptionResourceId(...)"
        )
        guid = resolve(function["parameters"]["resource_name_1"], assignment.path)
        found[assignment.key] = {"role": guid, "config": config, "path": assignment.path}
    return found


def test_exactly_the_data_plane_roles_are_assigned():
    assignments = role_assignments()
    roles = [a["role"] for a in assignments.values()]
    assert sorted(roles) == sorted(
        [
            ROLE_BLOB_DATA_OWNER,
            ROLE_QUEUE_DATA_CONTRIBUTOR,
            ROLE_TABLE_DATA_CONTRIBUTOR,
            ROLE_MONITORING_METRICS_PUBLISHER,
        ]
    )
    for key, a in assignments.items():
        config, path = a["config"], a["path"]
        assert config["properties"]["principalType"] == "ServicePrincipal", key
        assert config["name"]["function"]["type"] == "guid", f"{key}: name must be guid(...)"
        where, principal_id = trace(config["properties"]["principalId"], path)
        principal = accessor_path(principal_id)
        assert (
            principal
            and principal[0] in parse(where).get("resources", {})
            and (real_resource(where, principal[0]).key in all_resources(IDENTITY))
        ), f"{key}: principal must be the user-assigned identity"
        scope_type = real_resource(path, config["scope"]).resource["type"]
        expected_scope = INSIGHTS if a["role"] == ROLE_MONITORING_METRICS_PUBLISHER else STORAGE_ACCOUNT
        assert scope_type == expected_scope, f"{key}: scope {scope_type}, expected {expected_scope}"


@pytest.mark.parametrize("path", bicep_files() + bicepparam_files(), ids=rel)
def test_no_broad_roles_anywhere(path: Path):
    text = path.read_text().lower()
    for guid, role in FORBIDDEN_ROLES.items():
        assert guid not in text, f"{path.name} grants {role}"


# --------------------------------------------------------------------------------------
# Names shared with the code
# --------------------------------------------------------------------------------------


def resolved_names(rtype: str) -> set[str]:
    return {resolve(found.config["name"], found.path) for found in find_resources(rtype)}


def test_queue_and_table_names_match_shared_names():
    assert resolved_names(QUEUE) == {
        names.EXPORT_QUEUE,
        names.EXPORT_POISON_QUEUE,
        names.CALLBACK_QUEUE,
        names.CALLBACK_POISON_QUEUE,
        names.EXPORT_REDRIVEN_QUEUE,
    }
    assert resolved_names(TABLE) == {names.EXPORT_TABLE}


def manifest_container() -> Found:
    """The container whose name is the SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME app setting."""
    origin = trace(*reversed(located_app_settings()["SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME"]))
    found = [c for c in find_resources(CONTAINER) if trace(c.config["name"], c.path) == origin]
    assert len(found) == 1, "the manifest container must be named by the same parameter as the app setting"
    return found[0]


def test_manifest_container_name_matches_the_setting_default():
    default = next(s.default for s in SETTINGS if s.name == "SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME")
    container = manifest_container()
    assert resolve(container.config["name"], container.path) == default


def test_lifecycle_rule_deletes_old_manifests_only():
    found = the_one(find_resources(LIFECYCLE), "lifecycle policy")
    policy, path = found.config, found.path
    rules = [r for r in policy["properties"]["policy"]["rules"] if r["enabled"] is True]
    assert rules
    manifests = manifest_container()
    container = resolve(manifests.config["name"], manifests.path)
    for rule in rules:
        definition = rule["definition"]
        assert resolve(definition["filters"]["prefixMatch"], path) == [f"{container}/"], rule["name"]
        days = resolve(definition["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"], path)
        sas_hours_max = 168  # settings.MANIFEST_SAS_HOURS upper bound (7 days)
        assert isinstance(days, int) and days * 24 > sas_hours_max, "manifests must outlive their SAS"


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------


def test_outputs_name_the_app_and_leak_no_secret():
    for path in bicep_files():
        doc = parse(path)
        secure = secure_parameters(doc)
        for name, output in doc.get("outputs", {}).items():
            assert not identifiers(output["value"]) & secure, f"output {name} exposes a secure parameter"
            assert not {d["type"] for d in output["decorators"]} & {"secure"}, name
            assert "key" not in name.lower() and "secret" not in name.lower(), name
    outputs = main_doc()["outputs"]
    assert set(outputs) == {"functionAppName", "defaultHostName", "storageAccountName", "identityClientId"}
    # Followed into the modules: what each output finally is exposes no secure parameter.
    for name, output in outputs.items():
        where, value = trace(output["value"], MAIN)
        assert not identifiers(value) & secure_parameters(parse(where)), (
            f"output {name} exposes a secure parameter"
        )


# --------------------------------------------------------------------------------------
# Parameter files
# --------------------------------------------------------------------------------------


def test_parameter_files_exist_for_staging_and_production():
    assert {p.name for p in bicepparam_files()} >= {"main.staging.bicepparam", "main.production.bicepparam"}


@pytest.mark.parametrize("path", bicepparam_files(), ids=rel)
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
                f"{path.name}: secure parameter {name} must come from readEnvironmentVariable(...)"
            )


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


@pytest.mark.slow
def test_checkov_finds_nothing_unjustified(tmp_path: Path):
    command = _checkov_command()
    if command is None:
        pytest.skip("checkov is not importable (set CHECKOV=/path/to/checkov to run it from another venv)")
    # No update check: it would ask PyPI, which a test has no business depending on.
    env = dict(
        untraced_env(),
        BC_SKIP_MAPPING="TRUE",
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",
    )
    result = subprocess.run(
        command
        + ["-d", str(INFRA), "--framework", "bicep", "--skip-download", "--output", "json", "--compact"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    # checkov reads every file of the template (main.bicep and the modules): each
    # `// checkov:skip=ID` comment, in whichever file, is applied to a resource it checks.
    written = sorted(
        (rel(path), check_id)
        for path in bicep_files()
        for check_id in re.findall(r"//\s*checkov:skip=(\w+)", path.read_text())
    )
    applied = sorted(
        (Path(c["file_abs_path"]).resolve().relative_to(INFRA).as_posix(), c["check_id"])
        for rep in reports
        for c in rep["results"].get("skipped_checks", [])
    )
    assert written, "no checkov:skip comments found"
    assert applied == written, (
        f"checkov:skip comments not applied by checkov: {sorted(set(written) - set(applied))}"
    )
    for rep in reports:
        summary = rep["summary"]
        assert summary["parsing_errors"] == 0, "checkov could not parse infra/"
        results = rep["results"]
        failed = [f"{c['check_id']} {c['resource']}" for c in results.get("failed_checks", [])]
        assert not failed, f"checkov findings (fix, or justify with // checkov:skip=ID: reason): {failed}"
        for skipped in results.get("skipped_checks", []):
            comment = skipped.get("check_result", {}).get("suppress_comment", "")
            assert comment and comment != "No comment provided", (
                f"{skipped['check_id']} skipped without reason"
            )


# --------------------------------------------------------------------------------------
# Alerts (infra/app/alerts.bicep; their queries run on captured telemetry in tests/ops)
# --------------------------------------------------------------------------------------

ACTION_GROUP = "Microsoft.Insights/actionGroups"
QUERY_RULE = "Microsoft.Insights/scheduledQueryRules"
ALERTS = INFRA / "app" / "alerts.bicep"
OPERATIONAL_CODES = {
    "internal_error",
    "panoptes_unavailable",
    "ml_rejected",
    "deadline_exceeded",
    "ml_task_not_found",
}


def bicep_text(value: str, path: Path) -> str:
    """A Bicep string as deployed: escapes decoded, `${variable}` replaced by its value."""
    variables = parse(path).get("variables", {})
    value = re.sub(r"\$\{(\w+)\}", lambda m: bicep_text(variables[m.group(1)]["value"], path), value)
    return value.replace("\\n", "\n").replace("\\'", "'").replace("\\\\", "\\")


def alert_rules() -> dict[str, dict[str, str]]:
    """The log alert rules by name, their strings decoded (each rule is an entry of `rules`)."""
    rules = parse(ALERTS)["variables"]["rules"]["value"]
    return {
        rule["name"]: {k: bicep_text(v, ALERTS) if isinstance(v, str) else v for k, v in rule.items()}
        for rule in rules
    }


def test_the_alerts_email_the_operators_given_as_a_parameter_empty_by_default():
    [group] = find_resources(ACTION_GROUP)
    properties = group.config["properties"]
    assert properties["enabled"] is True and len(properties["groupShortName"]) <= 12
    receivers = properties["emailReceivers"]
    assert receivers["loop_type"]["detail"]["array_name"] == "alertEmails"
    assert receivers["config"]["emailAddress"] == receivers["loop_type"]["detail"]["item_name"]
    where, top = trace("alertEmails", group.path)
    assert where == MAIN and main_doc()["parameters"][top]["default"] == []


def test_every_alert_rule_queries_application_insights_and_says_what_to_do():
    [found] = find_resources(QUERY_RULE)
    assert found.path == ALERTS and found.resource["api_version"] >= "2023-03-15-preview"
    assert found.config["loop_type"]["detail"]["array_name"] == "rules"
    rule = found.config["config"]
    assert rule["kind"] == "LogAlert"
    properties = rule["properties"]
    [scope] = properties["scopes"]
    assert accessor_path(scope) == ["appInsights", "id"]
    assert real_resource(ALERTS, "appInsights").key in all_resources(INSIGHTS)
    assert [accessor_path(a) for a in properties["actions"]["actionGroups"]] == [["operators", "id"]]
    [condition] = properties["criteria"]["allOf"]
    assert (condition["timeAggregation"], condition["operator"], condition["threshold"]) == (
        "Count",
        "GreaterThan",
        0,
    )
    assert properties["enabled"] is True and properties["autoMitigate"] is True
    rules = alert_rules()
    assert set(rules) == {
        "exports-failed-operational",
        "export-message-poisoned",
        "ml-service-unreachable",
        "http-5xx-rate",
    }
    for name, each in rules.items():
        assert "docs/OPERATIONS.md" in each["description"], (
            f"{name}: the description must say where to read on"
        )
        assert 0 <= each["severity"] <= 4 and each["query"].strip()
        assert re.fullmatch(r"PT\d+[MH]", each["evaluationFrequency"]) and re.fullmatch(
            r"PT\d+[MH]", each["windowSize"]
        )


def test_the_failure_alert_counts_operational_codes_and_no_user_outcome():
    query = alert_rules()["exports-failed-operational"]["query"]
    listed = set(re.findall(r'"(\w+)"', query.split(" in (", 1)[1]))
    assert listed == OPERATIONAL_CODES
    for user_outcome in (
        "subject_set_empty",
        "token_expired",
        "ml_failed",
        "ml_no_results",
        "ml_submission_unknown",
    ):
        assert user_outcome not in query


def test_the_alerts_read_the_events_the_code_logs():
    from exports import events

    queries = {name: rule["query"] for name, rule in alert_rules().items()}
    assert f'"{events.FINISHED}"' in queries["exports-failed-operational"]
    assert (
        f'"{events.POISONED}"' in queries["export-message-poisoned"]
        and names.EXPORT_POISON_QUEUE in queries["export-message-poisoned"]
    )
    assert f'"{events.POLL_TICK}"' in queries["ml-service-unreachable"]
