"""Schemathesis against a live server, from the server's own ``/openapi.json``: every action, with valid and
invalid parameters, every request V3-signed with the server's key at the last moment.

Checks: never a 5xx; every error is a 4xx with the ICE envelope; status, content type, headers and body as
the document says; invalid parameters (by the document) are refused. A hook sends some requests to live
instances and the real agent, so they get past "not found" into the actions themselves. Generation is
deterministic; ``HERALD_FUZZ_EXAMPLES`` (default 25 per operation) raises it for a deeper run. The two
known findings (docs/openapi.md) are excluded where they occur, and only there.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema_rs
import pytest
import requests
import schemathesis
from alibabacloud_tea_openapi.utils import Utils
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from herald.agents.registry import DEFAULT_AGENT_ID
from herald.api.actions import ACTIONS
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.server import API_VERSION, HeraldServer, KeyPair

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "25"))
ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}
V3 = "ACS3-HMAC-SHA256"
LIVE_INSTANCES = 2
"""Instances the fuzzing may address (stopping them only through ``STOPPABLE``)."""
STOPPABLE = 3


class AcsV3Signer(requests.auth.AuthBase):
    """Signs the prepared request (final URL, body and headers) with ``ACS3-HMAC-SHA256``."""

    def __init__(self, key: KeyPair) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url or "")
        body = request.body or b""
        payload_hash = hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()
        request.headers["host"] = url.netloc
        request.headers["x-acs-date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        request.headers["x-acs-signature-nonce"] = secrets.token_hex(16)
        request.headers["x-acs-content-sha256"] = payload_hash
        signed = {
            name.lower(): value
            for name, value in request.headers.items()
            if name.lower() == "host" or name.lower().startswith("x-acs-")
        }
        # The server decodes the query it receives and re-encodes it for the canonical form; so do we.
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        request.headers["Authorization"] = Utils.get_authorization(
            _Canonical(request.method or "POST", url.path or "/", query, signed),
            V3,
            payload_hash,
            self._key.access_key_id,
            self._key.access_key_secret,
        )
        return request


class _Canonical:
    """What ``Utils.get_authorization`` reads."""

    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, Any]) -> None:
        self.method, self.pathname, self.query, self.headers = method, path, query, headers


# ---- live things for the fuzzing to reach --------------------------------------------------------------


class Targets:
    """Real ids the hook substitutes now and then, and what came back (for the coverage summary)."""

    def __init__(self, server: HeraldServer) -> None:
        self.live = [self._generate(server) for _ in range(LIVE_INSTANCES)]
        self.stoppable = [self._generate(server) for _ in range(STOPPABLE)]
        # A spoken line, so ListAIAgentDialogues has something to list for the first instance's session.
        server.call("SendAIAgentSpeech", {"InstanceId": self.live[0], "Text": "Hello."})
        self.outcomes: Counter[tuple[str, str, int, str]] = Counter()

    @staticmethod
    def _generate(server: HeraldServer) -> str:
        instance_id: str = server.call("GenerateAIAgentCall", {"AIAgentId": DEFAULT_AGENT_ID})["InstanceId"]
        return instance_id

    def substitutions(self, action: str) -> list[tuple[str, st.SearchStrategy[Any], int]]:
        """(parameter, real values, one time in how many) for ``action``'s generated requests."""
        live = st.sampled_from(self.live)
        if action == "StopAIAgentInstance":
            return [("InstanceId", st.sampled_from(self.stoppable), 3)]
        if action == "SendAIAgentSpeech":  # each one accepted is synthesized: keep them few
            # ... and the live instances live on: a speech that ends the call would end them.
            return [("InstanceId", live, 4), ("EndCallAfterSpoken", st.just(False), 1)]
        if action in (
            "UpdateAIAgentInstance",
            "DescribeAIAgentInstance",
            "SendAIAgentDataChannelMessage",
            "SendAIAgentText",
        ):
            return [("InstanceId", live, 2)]
        if action == "ListAIAgentDialogues":
            return [("SessionId", live, 2)]
        agent: list[tuple[str, st.SearchStrategy[Any], int]] = [("AIAgentId", st.just(DEFAULT_AGENT_ID), 2)]
        if action == "StartAIAgentInstance":
            channel = st.uuids().map(lambda u: json.dumps({"ChannelId": f"fuzz-{u.hex}"}))
            return [*agent, ("RuntimeConfig", channel, 2)]
        return agent


def _valid(parameter: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid for the documented ``parameter`` (JSON-string parameters included)."""
    schema = parameter["schema"]
    if not jsonschema_rs.validator_for(schema).is_valid(value):
        return False
    if schema.get("contentMediaType") == "application/json":
        try:
            json.loads(value)
        except ValueError:
            return False
    return True


def _sometimes(
    query: dict[str, Any], parameter: dict[str, Any], real: st.SearchStrategy[Any], one_in: int
) -> st.SearchStrategy[dict[str, Any]]:
    """``query`` as generated, or (one time in ``one_in``) with ``parameter`` set to a ``real`` value.

    Only a valid value is replaced, so a case generated invalid in that parameter stays invalid.
    """
    name = parameter["name"]
    if name not in query or not _valid(parameter, query[name]):
        return st.just(query)
    return st.integers(0, one_in - 1).flatmap(
        lambda pick: real.map(lambda value: {**query, name: value}) if pick == 0 else st.just(query)
    )


@pytest.fixture(scope="module")
def targets(server: HeraldServer) -> Targets:
    return Targets(server)


@pytest.fixture(scope="module")
def api_schema(server: HeraldServer, targets: Targets) -> Any:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        database="none",
        # The signer writes Authorization; generated values for it would only be overwritten.
        with_security_parameters=False,
        # Unknown parameters are ignored by design (ICE's SDKs send some, such as RegionId).
        allow_extra_parameters=False,
    )
    schema.config.output.sanitization.update(enabled=False)  # test keys; show the requests as sent

    @schema.hook
    def filter_query(context: Any, query: dict[str, Any] | None) -> bool:
        """Fuzz the action's own parameters: a wrong Action or Version only ever gets InvalidApi.NotFound,
        and half the invalid cases would be spent on it (the coverage phase still sends those)."""
        action = context.operation.definition.raw["operationId"]
        return not query or (query.get("Action") == action and query.get("Version") == API_VERSION)

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        """Now and then, a live instance, session or agent instead of a random id."""
        strategy: st.SearchStrategy[Any] = st.just(query)
        if not query:
            return strategy
        raw = context.operation.definition.raw
        parameters = {p["name"]: p for p in raw["parameters"]}
        for name, real, one_in in targets.substitutions(raw["operationId"]):
            strategy = strategy.flatmap(
                lambda q, p=parameters[name], r=real, n=one_in: _sometimes(q, p, r, n)
            )
        return strategy

    return schema


def ice_envelope(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """A success carries ``RequestId``; anything else is a 4xx with the ICE error envelope."""
    try:
        body = json.loads(response.text)
    except ValueError:
        raise AssertionError(f"{response.status_code}, not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict), f"not a JSON object: {response.text[:200]}"
    assert "RequestId" in body, body
    if response.status_code >= 300:
        assert 400 <= response.status_code < 500, f"{response.status_code}: {body}"
        assert body.keys() >= ENVELOPE_KEYS, f"not an ICE error envelope: {body}"
    return None


CHECKS = [
    not_a_server_error,
    ice_envelope,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def signed_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy schemas read and write ``node._nodeid``, which pytest 9.2 no longer has
    (its node id lives in ``_id``); give the test node the attribute so ``from_fixture`` runs."""
    request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    """This module's server has an LLM (a scripted one), so that ``SendAIAgentText`` can succeed too."""
    with ScriptedLlm(default=Reply("Noted.", delay_between_s=0.0)) as llm:
        config = f'[llm]\nurl = "{llm.base_url}"\nmodel = "fuzz"\n'
        with HeraldServer(check_exit=False, config=config) as running:
            yield running


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_action_answers_as_documented(
    case: schemathesis.Case, server: HeraldServer, signed_session: requests.Session, targets: Targets
) -> None:
    action = case.operation.definition.raw["operationId"]
    phase = case.meta.phase.name.value if case.meta else "?"
    checks = CHECKS
    response = case.call(session=signed_session, auth=AcsV3Signer(server.key), timeout=30)
    if _is_refused_request_line(case, response):
        targets.outcomes[(action, phase, response.status_code, "request line too long")] += 1
        return
    if _negated_parameters_not_sent(case, response):
        checks = [check for check in checks if check is not negative_data_rejection]
    case.validate_response(response, checks=checks)
    code = "OK" if response.status_code == 200 else response.json()["Code"]
    targets.outcomes[(action, phase, response.status_code, code)] += 1


def _negated_parameters_not_sent(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """Schemathesis 4.32 sometimes makes an optional parameter invalid with a value (an empty object or
    array) that serializes to nothing or to an empty string; what is sent is then valid (absent, or the
    documented empty value) and must not be judged as invalid data accepted. True when that is so of every
    parameter the case negated."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    names = {getattr(data, "parameter", None)} | {m.parameter for m in getattr(data, "mutations", ())}
    names.discard(None)
    documented = {p["name"]: p for p in case.operation.definition.raw["parameters"]}
    sent = dict(parse_qsl(urlsplit(response.request.url or "").query, keep_blank_values=True))
    return bool(names) and all(
        name not in sent or (sent[name] == "" and name in documented and _valid(documented[name], ""))
        for name in names
    )


MAX_REQUEST_TARGET_BYTES = 65_500
"""Near the longest path and query the HTTP server takes (uvicorn with httptools): known finding 2."""


def _is_refused_request_line(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """Known finding 2 (docs/openapi.md): a request whose path and query pass about 64 KiB is refused by the
    HTTP layer with a plain-text 400 before Herald sees it, though its parameters may be within the
    documented limits (8192 characters of UserData, percent-encoded, take up to 96 KiB)."""
    if response.request.url is None or len(response.request.path_url) <= MAX_REQUEST_TARGET_BYTES:
        return False
    return (response.status_code, response.text) == (400, "Invalid HTTP request received.")


def test_fuzzing_reached_the_actions(targets: Targets, server: HeraldServer) -> None:
    """Runs after the fuzzing: every action answered some requests with success, past "not found" and
    bad parameters; and nothing failed inside the server (run with ``-s`` to see the tally)."""
    by_action: dict[str, Counter[str]] = {}
    for (action, phase, status, code), count in targets.outcomes.items():
        by_action.setdefault(action, Counter())[f"{phase} {status} {code}"] += count
    print("\n" + json.dumps({a: dict(c.most_common()) for a, c in sorted(by_action.items())}, indent=1))
    succeeded = {action for (action, _, status, _), _ in targets.outcomes.items() if status == 200}
    assert succeeded == set(ACTIONS), f"no success for {sorted(set(ACTIONS) - succeeded)}"
    records = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    warnings = Counter(r["message"][:120] for r in records if r["level"] == "WARNING")
    print(json.dumps(dict(warnings.most_common()), indent=1))
    failures = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert not failures, json.dumps(failures, indent=1)
