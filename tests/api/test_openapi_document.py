"""The OpenAPI document of the RPC actions (``herald.api.openapi``): valid, one operation per action, and
every error an action can answer listed under the status the envelope gives it."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from starlette.requests import Request

from herald import errors
from herald.api.actions import ACTIONS
from herald.api.context import API_VERSION
from herald.api.envelope import status_for
from herald.api.openapi import PENDING_CODES, openapi_document, openapi_endpoint, status_of

DOC = openapi_document()
OPERATIONS = {path: item["post"] for path, item in DOC["paths"].items()}

NOT_ON_RPC = {
    # Abstract parents: never raised as such.
    errors.HeraldError,
    errors.BadRequest,
    errors.AuthError,
    errors.NotFound,
    # Raised on other routes only: call tokens (audio WebSocket, WebRTC), channels and WebRTC sessions.
    errors.InvalidToken,
    errors.ChannelNotFound,
    errors.SessionNotFound,
    # Defined, mapped to 415, but raised nowhere yet.
    errors.UnsupportedMediaType,
}


def _error_classes() -> list[type[errors.HeraldError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.HeraldError) and cls.__module__ == errors.__name__
    ]


def _codes(operation: dict[str, Any]) -> dict[int, list[str]]:
    """The error codes an operation documents, by status (from each response's ``Code`` enum)."""
    codes = {}
    for status, response in operation["responses"].items():
        if status != "200":
            schema = response["content"]["application/json"]["schema"]
            codes[int(status)] = next(
                s["properties"]["Code"]["enum"] for s in schema["allOf"] if "properties" in s
            )
    return codes


def _parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation["parameters"]}


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(DOC)))
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises on the first error
    assert [op.ok().label for op in schema.get_all_operations()] == [f"POST /#{a}" for a in ACTIONS]


def test_every_schema_in_it_is_valid_json_schema() -> None:
    schemas = [p["schema"] for op in OPERATIONS.values() for p in op["parameters"]]
    schemas += list(DOC["components"]["schemas"].values())
    for schema in schemas:
        jsonschema_rs.meta.validate(schema)


def test_one_operation_per_action_named_by_its_action_and_version_parameters() -> None:
    assert set(OPERATIONS) == {f"/#{action}" for action in ACTIONS}
    for path, operation in OPERATIONS.items():
        action = path.removeprefix("/#")
        assert operation["operationId"] == action
        parameters = _parameters(operation)
        assert parameters["Action"]["schema"]["enum"] == [action]
        assert parameters["Version"]["schema"]["enum"] == [API_VERSION]
        assert all(p["in"] == "query" for p in parameters.values())
        assert parameters["Action"]["required"]
        assert parameters["Version"]["required"]


def test_every_error_an_rpc_action_can_raise_is_documented_under_its_status() -> None:
    documented: dict[str, set[int]] = {}
    for operation in OPERATIONS.values():
        for status, codes in _codes(operation).items():
            for code in codes:
                documented.setdefault(code, set()).add(status)
    raised = [cls for cls in _error_classes() if cls not in NOT_ON_RPC]
    assert {cls.code for cls in raised} <= set(documented), "undocumented codes"
    for cls in raised:
        assert documented[cls.code] == {status_for(cls.__new__(cls))}, cls
    for code, status in PENDING_CODES.items():
        assert documented[code] == {status}


@pytest.mark.parametrize("path", list(OPERATIONS))
def test_each_action_documents_the_errors_its_parameters_can_lead_to(path: str) -> None:
    operation = OPERATIONS[path]
    codes = _codes(operation)
    everywhere = {errors.MissingParameter, errors.InvalidParameter, errors.SignatureDoesNotMatch}
    everywhere |= {
        errors.ApiNotFound,
        errors.RequestTooLarge,
        errors.InternalError,
        errors.ServiceUnavailable,
    }
    expected = set(everywhere)
    parameters = _parameters(operation)
    if "InstanceId" in parameters:
        expected.add(errors.InstanceNotFound)
    if "AIAgentId" in parameters:
        expected.add(errors.AgentNotFound)
    if "ClientToken" in parameters:
        expected.add(errors.IdempotentParameterMismatch)
    for cls in expected:
        assert cls.code in codes.get(status_of(cls), []), (cls.code, codes)
    for code, status in PENDING_CODES.items():
        assert code in codes[status]
    for status, listed in codes.items():  # each code is described in its response
        description = operation["responses"][str(status)]["description"]
        assert all(f"`{code}`" in description for code in listed)


def test_throttling_and_ram_denial_are_described_with_their_extras() -> None:
    for operation in OPERATIONS.values():
        bad_request, forbidden = operation["responses"]["400"], operation["responses"]["403"]
        assert bad_request["headers"]["x-acs-retry-after"]["schema"]["type"] == "integer"
        assert {"required": ["AccessDeniedDetail"]} in forbidden["content"]["application/json"]["schema"][
            "allOf"
        ]
    detail = DOC["components"]["schemas"]["ErrorEnvelope"]["properties"]["AccessDeniedDetail"]
    assert detail["type"] == "object"


def test_limits_read_from_the_agent_config_model() -> None:
    agent_config = DOC["components"]["schemas"]["AgentConfig"]
    volume = next(s for s in agent_config["properties"]["Volume"]["anyOf"] if s.get("type") == "integer")
    assert (volume["minimum"], volume["maximum"]) == (0, 400)
    rate = DOC["components"]["schemas"]["AgentConfig.TtsSection"]["properties"]["SpeechRate"]["anyOf"][0]
    assert (rate["minimum"], rate["maximum"]) == (0.5, 2.0)


def test_served_at_openapi_json_without_a_signature() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/openapi.json", "headers": []})
    response = asyncio.run(openapi_endpoint(request))
    assert response.status_code == 200
    assert json.loads(bytes(response.body)) == json.loads(json.dumps(DOC))
    assert openapi_document() is DOC  # built once
