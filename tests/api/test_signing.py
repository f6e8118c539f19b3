"""Signature parsing and checking, against the public vectors and differentially against the official SDK."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from alibabacloud_ice20201109.client import Client as IceClient
from alibabacloud_ice20201109.models import SendAIAgentSpeechRequest
from alibabacloud_tea_openapi.utils import Utils, get_canonical_query_string
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.request import DaraRequest

from herald.api.signing import (
    Identity,
    SignedRequest,
    canonical_headers_v3,
    canonical_request_v3,
    identify,
    sign_v1,
    sign_v3,
    string_to_sign_v1,
    verify,
)
from herald.errors import IncompleteSignature, InvalidParameter, InvalidTimeStampFormat, SignatureDoesNotMatch

AK = "LTAI-test-key"
SECRET = "s3cr3t/with+odd=chars"
HOST = "127.0.0.1:8080"
DATE = "2026-11-21T06:05:29Z"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

VALUES = [
    "plain",
    "",
    "with space",
    "a+b",
    "*",
    "~tilde~",
    "!'()*",
    "&=?#/%20",
    "你好，世界",
    "emoji 😀 and ü",
    '{"Greeting": "Hi there", "TtsConfig": {"VoiceId": "v1", "SpeechRate": 1.2}}',
    "line\nbreak\ttab",
]


# -- how the SDK builds requests, and how the server receives them ------------------------------------------


def received(method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes) -> SignedRequest:
    """The request as the server sees it: the query decoded from the wire, header names lower-cased."""
    form = parse_qsl(body.decode(), keep_blank_values=True) if body else []
    return SignedRequest(
        method=method,
        path=path,
        query=parse_qsl(raw_query, keep_blank_values=True),
        form=form,
        headers=[(name.lower(), value) for name, value in headers.items()],
        body=body,
    )


def sdk_v3(
    query: dict[str, str],
    *,
    body: bytes = b"",
    extra_headers: dict[str, str] | None = None,
    secret: str = SECRET,
) -> SignedRequest:
    """A request signed by the SDK's own V3 signer, with the headers its RPC client sends."""
    payload_hash = hashlib.sha256(body).hexdigest()
    req = DaraRequest()
    req.method = "POST"
    req.pathname = "/"
    req.query = dict(query)
    req.headers = {
        "host": HOST,
        "x-acs-version": "2020-11-09",
        "x-acs-action": "SendAIAgentSpeech",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.9 Core/0.4.3 TeaDSL/2",
        "x-acs-date": DATE,
        "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
        "accept": "application/json",
        "x-acs-content-sha256": payload_hash,
        **(extra_headers or {}),
    }
    if body:
        req.headers["content-type"] = "application/x-www-form-urlencoded"
    req.headers["Authorization"] = Utils.get_authorization(req, "ACS3-HMAC-SHA256", payload_hash, AK, secret)
    return received(req.method, req.pathname, urlencode(req.query), req.headers, body)


def sdk_v1(
    query: dict[str, str], *, form: dict[str, str] | None = None, secret: str = SECRET
) -> SignedRequest:
    """A request signed by the SDK's own V1 (RPC) signer, with the parameters its V1 client sends."""
    params = {
        "Action": "SendAIAgentSpeech",
        "Format": "json",
        "Version": "2020-11-09",
        "Timestamp": DATE,
        "SignatureNonce": "fedcba9876543210fedcba9876543210",
        **query,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": AK,
    }
    params["Signature"] = Utils.get_rpcsignature({**params, **(form or {})}, "POST", secret)
    body = urlencode(form).encode() if form else b""
    return received("POST", "/", urlencode(params), {"host": HOST, "x-acs-action": "SendAIAgentSpeech"}, body)


def replace(
    req: SignedRequest,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> SignedRequest:
    """A copy of ``req`` with some query values or (single) header values changed."""
    q = [(k, (query or {}).get(k, v)) for k, v in req.query]
    h = [(k, (headers or {}).get(k, v)) for k, v in req.headers]
    fields = {f: getattr(req, f) for f in ("method", "path", "form", "body")} | kw
    return SignedRequest(query=q, headers=h, **fields)


def _fields(req: SignedRequest) -> dict[str, Any]:
    return {f: getattr(req, f) for f in ("method", "path", "query", "form", "headers", "body")}


def flip(value: str) -> str:
    """Change one byte of ``value`` (or make an empty value non-empty)."""
    return value[:-1] + chr(ord(value[-1]) ^ 1) if value else "x"


# -- the public vectors -------------------------------------------------------------------------------------


def test_vendor_vector() -> None:
    req = SignedRequest(
        method="POST",
        path="/",
        query=[
            ("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"),
            ("RegionId", "cn-shanghai"),
        ],
        form=[],
        headers=[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("x-acs-date", "2023-10-26T09:01:01Z"),
            ("x-acs-signature-nonce", "d410180a5abf7fe235dd9b74aca91fc0"),
            ("x-acs-version", "2014-05-26"),
        ],
        body=b"",
    )
    signed = [name for name, _ in req.headers]
    assert canonical_headers_v3(req, signed) == (
        "host:ecs.cn-shanghai.aliyuncs.com\n"
        "x-acs-action:RunInstances\n"
        f"x-acs-content-sha256:{EMPTY_SHA256}\n"
        "x-acs-date:2023-10-26T09:01:01Z\n"
        "x-acs-signature-nonce:d410180a5abf7fe235dd9b74aca91fc0\n"
        "x-acs-version:2014-05-26\n"
    )
    signature = sign_v3(canonical_request_v3(req, signed), "YourAccessKeySecret")
    assert signature == "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"

    authorization = (
        f"ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    signed_req = SignedRequest(
        **{**_fields(req), "headers": [*req.headers, ("authorization", authorization)]}
    )
    identity = identify(signed_req)
    assert identity == Identity(
        scheme="ACS3-HMAC-SHA256",
        access_key_id="YourAccessKeyId",
        nonce="d410180a5abf7fe235dd9b74aca91fc0",
        timestamp=datetime(2023, 10, 26, 9, 1, 1, tzinfo=UTC),
    )
    verify(signed_req, identity, "YourAccessKeySecret")


def test_sdk_unit_test_vector() -> None:
    # The SDK's own test signs an SM3 digest string as the payload hash, so pass it in rather than a body.
    req = SignedRequest(
        "GET", "", [("test", "ok"), ("empty", "")], [], [("x-acs-test", "http"), ("x-acs-test", "https")], b""
    )
    assert canonical_headers_v3(req, ["x-acs-test"]) == "x-acs-test:http,https\n"
    payload_hash = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
    canonical = canonical_request_v3(req, ["x-acs-test"], payload_hash=payload_hash)
    assert canonical.split("\n")[:3] == ["GET", "/", "empty=&test=ok"]
    assert sign_v3(canonical, "secret") == "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"


# -- V3, differential against the SDK -----------------------------------------------------------------------


def test_v3_canonical_query_matches_the_sdk() -> None:
    query = {f"K{i:02}": value for i, value in enumerate(VALUES)} | {"Ünïcode-Name": "ü", "a~b": "~"}
    req = received("POST", "/", urlencode(query), {}, b"")
    assert canonical_request_v3(req, []).split("\n")[2] == get_canonical_query_string(query)


@pytest.mark.parametrize("value", VALUES)
def test_v3_sdk_signed_is_accepted(value: str) -> None:
    req = sdk_v3({"InstanceId": "i-1", "Text": value, "Ünïcode-Name": value})
    identity = identify(req)
    assert (identity.scheme, identity.access_key_id) == ("ACS3-HMAC-SHA256", AK)
    assert identity.timestamp == datetime(2026, 11, 21, 6, 5, 29, tzinfo=UTC)
    verify(req, identity, SECRET)


@pytest.mark.parametrize("value", VALUES)
def test_v3_flipped_query_value_is_rejected(value: str) -> None:
    req = sdk_v3({"InstanceId": "i-1", "Text": value})
    forged = replace(req, query={"Text": flip(value)})
    with pytest.raises(SignatureDoesNotMatch, match="canonical request"):
        verify(forged, identify(forged), SECRET)


def test_v3_form_body_is_covered_by_the_payload_hash() -> None:
    body = urlencode({"Text": "hello world", "InstanceId": "i-1"}).encode()
    req = sdk_v3({"Action": "x"}, body=body)
    verify(req, identify(req), SECRET)

    altered = replace(req, body=body.replace(b"hello", b"jello"))
    with pytest.raises(SignatureDoesNotMatch, match="body"):
        verify(altered, identify(altered), SECRET)


def test_v3_altered_body_without_declared_hash_is_rejected() -> None:
    # x-acs-content-sha256 is optional; the payload hash in the canonical request still binds the body.
    req = sdk_v3({"Text": "hi"}, body=b"Text=hi")
    headers = [(n, v) for n, v in req.headers if n != "x-acs-content-sha256"]
    auth = dict(headers)["authorization"].replace("x-acs-content-sha256;", "")
    unsigned_hash = SignedRequest(
        **{**_fields(req), "headers": [(n, auth if n == "authorization" else v) for n, v in headers]}
    )
    with pytest.raises(SignatureDoesNotMatch, match="canonical request"):
        verify(unsigned_hash, identify(unsigned_hash), SECRET)


@pytest.mark.parametrize("header", ["x-acs-action", "x-acs-date", "host", "user-agent", "accept"])
def test_v3_changed_signed_header_is_rejected(header: str) -> None:
    req = sdk_v3({"Text": "hi"})
    value = dict(req.headers)[header]
    forged = replace(
        req, headers={header: value.replace("29Z", "30Z") if header == "x-acs-date" else flip(value)}
    )
    with pytest.raises(SignatureDoesNotMatch):
        verify(forged, identify(forged), SECRET)


def test_v3_wrong_secret_and_flipped_signature_are_rejected() -> None:
    req = sdk_v3({"Text": "hi"})
    with pytest.raises(SignatureDoesNotMatch):
        verify(req, identify(req), SECRET + "x")
    auth = dict(req.headers)["authorization"]
    forged = replace(req, headers={"authorization": auth[:-1] + ("0" if auth[-1] != "0" else "1")})
    with pytest.raises(SignatureDoesNotMatch):
        verify(forged, identify(forged), SECRET)


def test_v3_upper_case_hex_signature_is_accepted() -> None:
    req = sdk_v3({"Text": "hi"})
    auth = dict(req.headers)["authorization"]
    head, _, signature = auth.rpartition("=")
    upper = replace(req, headers={"authorization": f"{head}={signature.upper()}"})
    verify(upper, identify(upper), SECRET)


def test_v3_spaces_after_commas_are_tolerated() -> None:
    req = sdk_v3({"Text": "hi"})
    auth = dict(req.headers)["authorization"].replace(",", ", ")
    spaced = replace(req, headers={"authorization": auth})
    verify(spaced, identify(spaced), SECRET)


def test_v3_repeated_header_values_are_sorted_and_joined() -> None:
    req = sdk_v3({"Text": "hi"}, extra_headers={"x-acs-test": "http", "x-acs-TEST": " https "})
    assert ("x-acs-test", " https ") in req.headers
    verify(req, identify(req), SECRET)


def test_v3_repeated_query_key_is_rejected() -> None:
    req = sdk_v3({"Text": "hi"})
    repeated = SignedRequest(**{**_fields(req), "query": [*req.query, ("Text", "again")]})
    with pytest.raises(InvalidParameter, match="Text"):
        identify(repeated)
    with pytest.raises(InvalidParameter, match="Text"):
        canonical_request_v3(repeated, ["host"])


def test_v3_unsigned_acs_header_is_rejected() -> None:
    req = sdk_v3({"Text": "hi"})
    extra = SignedRequest(**{**_fields(req), "headers": [*req.headers, ("x-acs-extra", "1")]})
    with pytest.raises(IncompleteSignature, match="x-acs-extra"):
        identify(extra)


def test_v3_unsigned_other_header_is_ignored() -> None:
    req = sdk_v3({"Text": "hi"})
    extra = SignedRequest(**{**_fields(req), "headers": [*req.headers, ("x-forwarded-for", "10.0.0.1")]})
    verify(extra, identify(extra), SECRET)


def _authorization_case(auth: str) -> SignedRequest:
    return replace(sdk_v3({"Text": "hi"}), headers={"authorization": auth})


SIGNED = (
    "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
)
HEX = "a" * 64


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (f"ACS3-HMAC-SM3 Credential={AK},SignedHeaders={SIGNED},Signature={HEX}", "not supported"),
        (f"acs {AK}:abc", "not supported"),
        (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED}", "lacks Signature"),
        (f"ACS3-HMAC-SHA256 SignedHeaders={SIGNED},Signature={HEX}", "lacks Credential"),
        (f"ACS3-HMAC-SHA256 Credential=,SignedHeaders=,Signature={HEX}", "lacks Credential, SignedHeaders"),
        (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED},Signature=xyz", "64 hex digits"),
        (
            f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED},Signature={HEX},Extra=1",
            "malformed part",
        ),
        (f"ACS3-HMAC-SHA256 Credential={AK},Credential={AK},SignedHeaders={SIGNED},Signature={HEX}", "twice"),
        (
            f"ACS3-HMAC-SHA256 Credential={AK};SignedHeaders={SIGNED};Signature={HEX}",
            "lacks SignedHeaders, Signature",
        ),
        ("ACS3-HMAC-SHA256", "lacks Credential, SignedHeaders, Signature"),
        (f"ACS3-HMAC-SHA256 Credential={AK} SignedHeaders={SIGNED} Signature={HEX}", "malformed part"),
        (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders=host;accept,Signature={HEX}", "sorted"),
        (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders=Host,Signature={HEX}", "lower-case"),
        (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders=host;;x-acs-date,Signature={HEX}", "lower-case"),
        (
            f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED};x-acs-zzz,Signature={HEX}",
            "not sent: x-acs-zzz",
        ),
        (
            f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED.replace('host;', '')},Signature={HEX}",
            "host must be listed",
        ),
        (
            f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={SIGNED.rpartition(';')[0]},Signature={HEX}",
            "x-acs-version must be listed",
        ),
    ],
)
def test_v3_garbled_authorization_is_incomplete(auth: str, message: str) -> None:
    with pytest.raises(IncompleteSignature, match=message):
        identify(_authorization_case(auth))


@pytest.mark.parametrize("header", ["x-acs-date", "x-acs-signature-nonce", "host"])
def test_v3_required_header_missing_is_incomplete(header: str) -> None:
    req = sdk_v3({"Text": "hi"})
    auth = dict(req.headers)["authorization"].replace(f"{header};", "").replace(f";{header}", "")
    headers = [(n, auth if n == "authorization" else v) for n, v in req.headers if n != header]
    with pytest.raises(IncompleteSignature, match=f"lacks the header.*{header}"):
        identify(SignedRequest(**{**_fields(req), "headers": headers}))


def test_v3_repeated_date_header_is_incomplete() -> None:
    req = sdk_v3({"Text": "hi"})
    twice = SignedRequest(**{**_fields(req), "headers": [*req.headers, ("x-acs-date", DATE)]})
    with pytest.raises(IncompleteSignature, match="exactly once"):
        identify(twice)


def test_v3_two_authorization_headers_are_incomplete() -> None:
    req = sdk_v3({"Text": "hi"})
    auth = dict(req.headers)["authorization"]
    twice = SignedRequest(**{**_fields(req), "headers": [*req.headers, ("authorization", auth)]})
    with pytest.raises(IncompleteSignature, match="exactly once"):
        identify(twice)


def test_v3_overlong_nonce_is_incomplete() -> None:
    req = sdk_v3({"Text": "hi"}, extra_headers={"x-acs-signature-nonce": "n" * 257})
    with pytest.raises(IncompleteSignature, match="x-acs-signature-nonce"):
        identify(req)


@pytest.mark.parametrize(
    "date",
    [
        "2026-11-21 06:05:29Z",
        "2026-11-21T06:05:29",
        "2026-11-21T06:05:29+00:00",
        "2026-11-21T06:05:29.123Z",
        "2026-13-21T06:05:29Z",
        "2026-02-30T06:05:29Z",
        "2026-11-21T24:00:00Z",
        "Sat, 21 Nov 2026 06:05:29 GMT",
        "٢٠٢٦-11-21T06:05:29Z",
        "",
    ],
)
def test_v3_bad_date_format(date: str) -> None:
    req = sdk_v3({"Text": "hi"}, extra_headers={"x-acs-date": date})
    with pytest.raises(InvalidTimeStampFormat):
        identify(req)


def test_unsigned_request_is_incomplete() -> None:
    req = SignedRequest("POST", "/", [("Action", "SendAIAgentSpeech")], [], [("host", HOST)], b"")
    with pytest.raises(IncompleteSignature, match="not signed"):
        identify(req)


# -- V1, differential against the SDK -----------------------------------------------------------------------


@pytest.mark.parametrize("value", VALUES)
def test_v1_sdk_signed_is_accepted(value: str) -> None:
    req = sdk_v1({"InstanceId": "i-1", "Text": value, "Ünïcode-Name": value})
    identity = identify(req)
    assert identity == Identity(
        scheme="HMAC-SHA1",
        access_key_id=AK,
        nonce="fedcba9876543210fedcba9876543210",
        timestamp=datetime(2026, 11, 21, 6, 5, 29, tzinfo=UTC),
    )
    verify(req, identity, SECRET)


@pytest.mark.parametrize("value", VALUES)
def test_v1_flipped_value_is_rejected(value: str) -> None:
    req = sdk_v1({"InstanceId": "i-1", "Text": value})
    forged = replace(req, query={"Text": flip(value)})
    with pytest.raises(SignatureDoesNotMatch, match="string to sign"):
        verify(forged, identify(forged), SECRET)


@pytest.mark.parametrize("value", VALUES)
def test_v1_form_parameters_are_signed(value: str) -> None:
    req = sdk_v1({"InstanceId": "i-1"}, form={"Text": value, "Type": "Text"})
    verify(req, identify(req), SECRET)
    forged = SignedRequest(
        **{**_fields(req), "form": [(k, flip(v) if k == "Text" else v) for k, v in req.form]}
    )
    with pytest.raises(SignatureDoesNotMatch):
        verify(forged, identify(forged), SECRET)


def test_v1_signature_fields_may_arrive_in_the_form() -> None:
    req = sdk_v1({"Text": "hi"})
    moved = SignedRequest(**{**_fields(req), "query": [], "form": req.query})
    verify(moved, identify(moved), SECRET)


def test_v1_string_to_sign_and_signature() -> None:
    req = SignedRequest(
        "POST", "/", [("B", "x y"), ("A", "*~"), ("Signature", "ignored")], [("C", "é")], [], b""
    )
    assert string_to_sign_v1(req) == "POST&%2F&A%3D%252A~%26B%3Dx%2520y%26C%3D%25C3%25A9"
    assert sign_v1(string_to_sign_v1(req), SECRET) == Utils.get_rpcsignature(
        {"B": "x y", "A": "*~", "C": "é"}, "POST", SECRET
    )


def test_v1_wrong_secret_is_rejected() -> None:
    req = sdk_v1({"Text": "hi"})
    with pytest.raises(SignatureDoesNotMatch):
        verify(req, identify(req), "other")


def test_v1_unescaped_plus_in_signature_is_tolerated() -> None:
    for n in range(64):  # find a signature with a '+' in it
        req = sdk_v1({"Text": f"hi {n}"})
        signature = dict(req.query)["Signature"]
        if "+" in signature:
            break
    else:
        pytest.fail("no signature with '+' found")
    decoded = replace(req, query={"Signature": signature.replace("+", " ")})
    verify(decoded, identify(decoded), SECRET)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("AccessKeyId",), "lacks AccessKeyId"),
        (("SignatureNonce", "Timestamp"), "lacks SignatureNonce, Timestamp"),
        (("SignatureMethod", "SignatureVersion"), "lacks SignatureMethod, SignatureVersion"),
    ],
)
def test_v1_missing_fields_are_named(drop: tuple[str, ...], message: str) -> None:
    req = sdk_v1({"Text": "hi"})
    partial = SignedRequest(**{**_fields(req), "query": [(k, v) for k, v in req.query if k not in drop]})
    with pytest.raises(IncompleteSignature, match=message):
        identify(partial)


def test_v1_other_signature_method_names_the_supported_ones() -> None:
    req = replace(sdk_v1({"Text": "hi"}), query={"SignatureMethod": "HMAC-SHA256"})
    with pytest.raises(IncompleteSignature, match=r"supported: HMAC-SHA1, or ACS3-HMAC-SHA256"):
        identify(req)


def test_v1_other_signature_version_is_incomplete() -> None:
    req = replace(sdk_v1({"Text": "hi"}), query={"SignatureVersion": "2.0"})
    with pytest.raises(IncompleteSignature, match=r"SignatureVersion must be 1\.0"):
        identify(req)


def test_v1_parameter_in_both_query_and_form_is_rejected() -> None:
    req = sdk_v1({"Text": "hi"})
    both = SignedRequest(**{**_fields(req), "form": [("Text", "other")]})
    with pytest.raises(InvalidParameter, match="Text"):
        identify(both)
    with pytest.raises(InvalidParameter, match="Text"):
        string_to_sign_v1(both)


def test_v1_bad_timestamp_format() -> None:
    req = replace(sdk_v1({"Text": "hi"}), query={"Timestamp": "2026-11-21T06:05:29.000Z"})
    with pytest.raises(InvalidTimeStampFormat, match="Timestamp"):
        identify(req)


# -- the real SDK client on the wire ------------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    """Records each request as a ``SignedRequest`` and answers like ICE with an empty success."""

    captured: list[SignedRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        url = urlsplit(self.path)
        form = []
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qsl(body.decode(), keep_blank_values=True)
        self.captured.append(
            SignedRequest(
                method=self.command,
                path=url.path,
                query=parse_qsl(url.query, keep_blank_values=True),
                form=form,
                headers=[(name.lower(), value) for name, value in self.headers.items()],
                body=body,
            )
        )
        answer = b'{"RequestId": "r-1"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def capture_port() -> Iterator[tuple[int, list[SignedRequest]]]:
    captured: list[SignedRequest] = []
    handler = type("Handler", (_Capture,), {"captured": captured})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server.server_address[1], captured
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
@pytest.mark.parametrize("text", ["Hello, world!", "a+b c*d~e", "你好，世界 😀", '{"k": "v & w"}', ""])
def test_real_sdk_request_verifies(
    capture_port: tuple[int, list[SignedRequest]], algorithm: str | None, text: str
) -> None:
    port, captured = capture_port
    config = Config(
        access_key_id=AK,
        access_key_secret=SECRET,
        endpoint=f"127.0.0.1:{port}",
        protocol="http",
        signature_algorithm=algorithm,
        no_proxy="127.0.0.1",
    )
    IceClient(config).send_aiagent_speech(
        SendAIAgentSpeechRequest(instance_id="i-1", text=text, enable_interrupt=False)
    )
    (req,) = captured
    identity = identify(req)
    assert identity.scheme == ("HMAC-SHA1" if algorithm else "ACS3-HMAC-SHA256")
    assert identity.access_key_id == AK
    verify(req, identity, SECRET)
    with pytest.raises(SignatureDoesNotMatch):
        verify(replace(req, query={"Text": text + "!"}), identity, SECRET)
