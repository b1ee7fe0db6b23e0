"""GET /api/openapi.json describes exactly the routes the app registers, validates as OpenAPI
3.1, and its examples (real answers, recorded by `make docs`) match their own schemas."""

import pathlib

import jsonschema
import pytest
from openapi_spec_validator import validate

import function_app  # noqa: F401  (registers every route)
from exports import openapi
from exports.contract import ERRORS
from shared.routing import ROUTES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = openapi.document()


def test_the_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


def test_routes_and_operations_match_both_ways():
    registered = {
        ("/" + r.template, m.lower()) for r in ROUTES if r.template.startswith("api/") for m in r.methods
    }
    documented = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert registered == documented
    assert all(key in {(r.template, m) for r in ROUTES for m in r.methods} for key in openapi.OPERATIONS)


def test_every_error_code_is_documented_with_its_status_and_used_by_an_operation():
    """The codes, their statuses and meanings come from exports/contract.py; each appears in the
    document with its status, on at least one operation."""
    assert {str(code): status for code, (status, _) in ERRORS.items()} == openapi.ERROR_STATUS
    assert set(openapi.ERROR_MEANING) == set(openapi.ERROR_STATUS)
    answered = {
        (code, int(status))
        for item in DOC["paths"].values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        if int(status) >= 400
        for code in response.get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("properties", {})
        .get("error", {})
        .get("properties", {})
        .get("code", {})
        .get("enum", [])
    }
    assert answered == set(openapi.ERROR_STATUS.items())


def _schema_of(media):
    return {**media["schema"], "components": DOC["components"]}


@pytest.mark.parametrize(
    "path,method,status",
    [
        (path, method, status)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        for status, response in op["responses"].items()
        if "example" in response.get("content", {}).get("application/json", {})
    ],
)
def test_examples_match_their_schemas(path, method, status):
    media = DOC["paths"][path][method]["responses"][status]["content"]["application/json"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_schema_of(media)}
    jsonschema.validate(media["example"], schema)


def test_every_operation_has_real_examples():
    with_examples = {
        op["operationId"]
        for item in DOC["paths"].values()
        for op in item.values()
        if any(
            "example" in r.get("content", {}).get("application/json", {}) for r in op["responses"].values()
        )
    }
    assert with_examples >= {
        "startExport",
        "listProjectExports",
        "listProjects",
        "getExport",
        "cancelExport",
        "health",
    }


def test_ids_are_bounded_and_the_token_is_a_bearer_scheme():
    start = DOC["paths"]["/api/projects/{project_id}/subject-sets/{subject_set_id}/exports"]["post"]
    ids = {p["name"]: p["schema"] for p in start["parameters"]}
    assert ids["project_id"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert DOC["components"]["securitySchemes"]["panoptesToken"] == {
        **DOC["components"]["securitySchemes"]["panoptesToken"],
        "type": "http",
        "scheme": "bearer",
    }
    assert DOC["paths"]["/api/health"]["get"]["security"] == []


def test_the_callback_is_described_with_its_signature_and_a_verification_example_that_works():
    """The start POST's `callbacks` object: the Export as the body, the signature header, and the
    Python example in its description, run here against the service's own signing."""
    from exports.callbacks import signature

    start = DOC["paths"]["/api/projects/{project_id}/subject-sets/{subject_set_id}/exports"]["post"]
    [callback] = start["callbacks"]["exportEnded"].values()
    post = callback["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Export"
    }
    [header] = [p for p in post["parameters"] if p["in"] == "header"]
    assert header["name"] == "X-Signature-256" and header["required"] is True
    code = post["description"].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)
    body, token = b'{"id": "1234-5678-x", "status": "completed"}', "a-receivers-secret-0123456789"
    assert namespace["verified"](body, signature(body, token), token)
    assert not namespace["verified"](body + b" ", signature(body, token), token)
    assert not namespace["verified"](body, signature(body, token), token + "x")
