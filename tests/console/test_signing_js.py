"""The console's JavaScript signer (src/herald/console/sign.js), run in Chromium, against Python's.

The oracle is the official SDK's ``get_authorization`` and Herald's own checker (``herald.api.signing``);
the published test vectors pin both; and the real server must accept what the page signs and refuse a
request signed with a wrong secret.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from alibabacloud_tea_openapi.utils import Utils
from playwright.sync_api import Page

from herald.api.signing import SignedRequest, canonical_request_v3, sign_v3
from herald.testing.server import EMPTY_SHA256, HeraldServer

pytestmark = pytest.mark.e2e

SIGN_IN_PAGE = """async ({ cases }) => {
  const s = await import('/console/sign.js');
  const out = [];
  for (const c of cases) {
    const key = await s.importSecret(c.secret);
    const canonical = s.canonicalRequest({
      method: c.method, path: '/', query: c.query, headers: c.headers, payloadHash: c.payloadHash,
    });
    out.push({ canonical, signature: await s.signature(key, canonical) });
  }
  return out;
}"""


class _SdkRequest:
    """What ``Utils.get_authorization`` reads."""

    def __init__(self, method: str, query: dict[str, str], headers: dict[str, str]) -> None:
        self.method = method
        self.pathname = "/"
        self.query = query
        self.headers = headers


def _open_console(page: Page, server: HeraldServer) -> None:
    page.goto(f"{server.url}/console/")
    page.wait_for_function("() => window.heraldConsole !== undefined")


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = string.ascii_letters + string.digits + " -_.~!*'()+&=/?%#@:;,$[]\"<>\\^`{|}" + "éü中文😀\t\n"
    return "".join(rng.choice(alphabet) for _ in range(size))


def _cases() -> list[dict[str, Any]]:
    rng = random.Random(20201109)
    cases: list[dict[str, Any]] = [
        {  # the vendor's published vector
            "method": "POST",
            "secret": "YourAccessKeySecret",
            "query": {
                "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                "RegionId": "cn-shanghai",
            },
            "headers": {
                "host": "ecs.cn-shanghai.aliyuncs.com",
                "x-acs-action": "RunInstances",
                "x-acs-content-sha256": EMPTY_SHA256,
                "x-acs-date": "2023-10-26T09:01:01Z",
                "x-acs-signature-nonce": "d410180a5abf7fe235dd9b74aca91fc0",
                "x-acs-version": "2014-05-26",
            },
            "payloadHash": EMPTY_SHA256,
            "expected": "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804",
        },
        {  # the SDK's own vector: an empty value, a header repeated in two cases
            "method": "GET",
            "secret": "secret",
            "query": {"test": "ok", "empty": ""},
            "headers": [["x-acs-test", "http"], ["x-acs-TEST", "https"]],
            "payloadHash": "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
            "expected": "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1",
        },
    ]
    names = ["InstanceId", "Text", "Type", "EnableInterrupt", "AgentConfig", "UserData", "AIAgentId"]
    for i in range(40):
        query = {name: _random_text(rng, rng.randint(0, 40)) for name in rng.sample(names, rng.randint(1, 6))}
        headers = {
            "host": f"127.0.0.1:{rng.randint(1024, 65535)}",
            "x-acs-action": rng.choice(["SendAIAgentSpeech", "GenerateAIAgentCall"]),
            "x-acs-content-sha256": EMPTY_SHA256,
            "x-acs-date": f"2026-11-{rng.randint(10, 28)}T0{rng.randint(0, 9)}:1{rng.randint(0, 9)}:00Z",
            "x-acs-signature-nonce": f"{rng.getrandbits(128):032x}",
            "x-acs-version": "2020-11-09",
        }
        cases.append(
            {
                "method": "POST",
                "secret": _random_text(rng, 30).replace("\n", "x") + str(i),
                "query": query,
                "headers": headers,
                "payloadHash": EMPTY_SHA256,
                "expected": None,
            }
        )
    return cases


def test_js_signatures_equal_the_sdk_and_the_server(
    server: HeraldServer, page: Page, page_errors: list[str]
) -> None:
    tab = page
    _open_console(tab, server)
    cases = _cases()
    results = tab.evaluate(SIGN_IN_PAGE, {"cases": cases})
    assert len(results) == len(cases)
    for case, result in zip(cases, results, strict=True):
        headers = case["headers"]
        if case["expected"] is not None:
            assert result["signature"] == case["expected"], result["canonical"]
        if isinstance(headers, dict):
            # The SDK's Authorization header for the same input carries the same signature.
            sdk = Utils.get_authorization(
                _SdkRequest(case["method"], case["query"], headers),
                "ACS3-HMAC-SHA256",
                case["payloadHash"],
                "AKID",
                case["secret"],
            )
            assert sdk.endswith(f"Signature={result['signature']}"), (case, result["canonical"])
            # Herald's checker rebuilds the same canonical request from the request as received.
            received = SignedRequest(
                method=case["method"],
                path="/",
                query=list(case["query"].items()),
                form=[],
                headers=list(headers.items()),
                body=b"",
            )
            canonical = canonical_request_v3(received, sorted(headers))
            assert canonical == result["canonical"]
            assert sign_v3(canonical, case["secret"]) == result["signature"]
    assert page_errors == []


CALL_IN_PAGE = """async ({ accessKeyId, secret, action, params }) => {
  const { importSecret } = await import('/console/sign.js');
  const { HeraldApi, ApiError } = await import('/console/api.js');
  const api = new HeraldApi({ endpoint: location.origin, accessKeyId, key: await importSecret(secret) });
  try {
    return { ok: true, body: await api.call(action, params) };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { ok: false, code: err.code, message: err.message, status: err.status, requestId: err.requestId };
  }
}"""


def test_the_server_accepts_what_the_page_signs(
    server: HeraldServer, page: Page, page_errors: list[str]
) -> None:
    tab = page
    _open_console(tab, server)
    # Values that need every kind of encoding make the round trip intact.
    user_data = "Grüße, 世界 😀 a+b=c&d *~!'() 100% /?#"
    answer = tab.evaluate(
        CALL_IN_PAGE,
        {
            "accessKeyId": server.access_key_id,
            "secret": server.access_key_secret,
            "action": "GenerateAIAgentCall",
            "params": {"AIAgentId": "default", "UserData": user_data},
        },
    )
    assert answer["ok"], answer
    instance_id = answer["body"]["InstanceId"]
    described = tab.evaluate(
        CALL_IN_PAGE,
        {
            "accessKeyId": server.access_key_id,
            "secret": server.access_key_secret,
            "action": "DescribeAIAgentInstance",
            "params": {"InstanceId": instance_id},
        },
    )
    assert described["ok"], described
    assert described["body"]["Instance"]["UserData"] == user_data
    assert page_errors == []

    refused = tab.evaluate(
        CALL_IN_PAGE,
        {
            "accessKeyId": server.access_key_id,
            "secret": server.access_key_secret + "x",
            "action": "StopAIAgentInstance",
            "params": {"InstanceId": instance_id},
        },
    )
    assert refused["ok"] is False
    assert (refused["code"], refused["status"]) == ("SignatureDoesNotMatch", 400), refused
    assert refused["requestId"]
    # The instance is untouched by the forged request; the right key stops it.
    stopped = tab.evaluate(
        CALL_IN_PAGE,
        {
            "accessKeyId": server.access_key_id,
            "secret": server.access_key_secret,
            "action": "StopAIAgentInstance",
            "params": {"InstanceId": instance_id},
        },
    )
    assert stopped["ok"], stopped
    # The only console error is the browser's note of the refused request's 400.
    assert all("status of 400" in e for e in page_errors), page_errors
