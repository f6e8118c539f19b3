"""Alibaba Cloud OpenAPI request signatures: V3 (``ACS3-HMAC-SHA256``) and V1 (``HMAC-SHA1``).

Pure functions over a request as received (no I/O, no clock). ``identify`` reads who claims to have signed
and when, without any secret; ``verify`` then checks the signature with that key's secret. Canonical forms
follow the official Python SDK (``alibabacloud_tea_openapi.utils``), the oracle; see ``docs/ice-wire.md``.
Timestamp windows and nonce replay are the caller's business (``herald.api.authn``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Final, Literal
from urllib.parse import quote

from herald.errors import (
    IncompleteSignature,
    InvalidParameter,
    InvalidTimeStampFormat,
    SignatureDoesNotMatch,
)

V3_SCHEME: Final = "ACS3-HMAC-SHA256"
V1_METHOD: Final = "HMAC-SHA1"
V1_VERSION: Final = "1.0"
MAX_NONCE_CHARS = 256  # the SDK sends 32; the cap bounds what the nonce cache stores

_V1_FIELDS = (
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)
_V3_PARTS = ("Credential", "SignedHeaders", "Signature")
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received, decoded but otherwise untouched."""

    method: str  # "POST"
    path: str  # the raw request path, e.g. "/"
    query: list[tuple[str, str]]  # decoded pairs in order received ('+' already decoded to space)
    form: list[tuple[str, str]]  # decoded x-www-form-urlencoded body pairs ([] if none)
    headers: list[tuple[str, str]]  # (lower-cased name, value) as received; a name may repeat
    body: bytes


@dataclass(frozen=True, slots=True)
class Identity:
    """Who claims to have signed a request, and when (not yet verified)."""

    scheme: Literal["ACS3-HMAC-SHA256", "HMAC-SHA1"]
    access_key_id: str
    nonce: str
    timestamp: datetime  # aware UTC


@dataclass(frozen=True, slots=True)
class _Authorization:
    access_key_id: str
    signed_headers: list[str]
    signature: str  # 64 hex digits, lower-cased


def identify(req: SignedRequest) -> Identity:
    """Read the signer's AccessKeyId, nonce and timestamp from a V3 Authorization header or V1 parameters.

    Raises ``IncompleteSignature`` when the signature fields are missing or malformed,
    ``InvalidTimeStampFormat`` for a date not of the form ``YYYY-MM-DDTHH:MM:SSZ``, and
    ``InvalidParameter`` for a repeated query (V3) or signed (V1) parameter.
    """
    if _header_values(req, "authorization"):
        auth = _parse_authorization(req)
        _unique(req.query)
        return Identity(
            scheme=V3_SCHEME,
            access_key_id=auth.access_key_id,
            nonce=_nonce(_one_header(req, "x-acs-signature-nonce"), "x-acs-signature-nonce"),
            timestamp=_parse_timestamp(_one_header(req, "x-acs-date"), "x-acs-date"),
        )
    if any(name == "Signature" for name, _ in chain(req.query, req.form)):
        params = _v1_params(req)
        return Identity(
            scheme=V1_METHOD,
            access_key_id=params["AccessKeyId"],
            nonce=_nonce(params["SignatureNonce"], "SignatureNonce"),
            timestamp=_parse_timestamp(params["Timestamp"], "Timestamp"),
        )
    raise IncompleteSignature(
        "the request is not signed: send an ACS3-HMAC-SHA256 Authorization header, "
        "or the V1 parameters AccessKeyId, Signature, SignatureMethod, SignatureNonce, Timestamp."
    )


def verify(req: SignedRequest, identity: Identity, secret: str) -> None:
    """Check the request's signature against ``secret``; raise ``SignatureDoesNotMatch`` if it differs.

    ``identity`` must come from ``identify(req)``. The message carries the server's canonical form,
    as the vendor's does, so a client can find where it disagrees.
    """
    if identity.scheme == V3_SCHEME:
        _verify_v3(req, secret)
    else:
        _verify_v1(req, secret)


def canonical_headers_v3(req: SignedRequest, signed_headers: Iterable[str]) -> str:
    """``name:value\\n`` for each signed header; repeated values are trimmed, sorted and joined by ``,``."""
    return "".join(
        f"{name}:{','.join(sorted(v.strip() for v in _header_values(req, name)))}\n"
        for name in signed_headers
    )


def canonical_request_v3(
    req: SignedRequest, signed_headers: list[str], *, payload_hash: str | None = None
) -> str:
    """The V3 CanonicalRequest; ``payload_hash`` defaults to ``hex(sha256(req.body))``.

    Raises ``InvalidParameter`` if a query key repeats (the SDK never sends one; we do not guess an order),
    or if a name holds ``&`` or ``=``.
    """
    # Names go in raw and values RFC 3986-encoded, as the Python SDK does; ICE names are all unreserved.
    # A raw name holding '&' or '=' would read as two parameters ("a=1&b" = "2" signs as a=1, b=2), so a
    # signature could be carried over to parameters it never covered: such names are refused.
    params = _unique(req.query)
    for name in params:
        if "&" in name or "=" in name:
            raise InvalidParameter(name[:64], "a parameter name must not contain '&' or '='.")
    query = "&".join(f"{name}={quote(value, safe='~')}" for name, value in sorted(params.items()))
    return "\n".join(
        [
            req.method,
            req.path or "/",
            query,
            canonical_headers_v3(req, signed_headers),  # ends in "\n", so a blank line follows, as in the SDK
            ";".join(signed_headers),
            payload_hash if payload_hash is not None else hashlib.sha256(req.body).hexdigest(),
        ]
    )


def string_to_sign_v1(req: SignedRequest) -> str:
    """The V1 StringToSign over every query and form parameter but ``Signature``.

    Raises ``InvalidParameter`` if a parameter repeats, within or across query and form.
    """
    params = _unique(chain(req.query, req.form))
    params.pop("Signature", None)
    canonical = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    return f"{req.method}&%2F&{_encode(canonical)}"


def sign_v3(canonical_request: str, secret: str) -> str:
    """Hex HMAC-SHA256 of the V3 StringToSign built from ``canonical_request``."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.new(secret.encode(), f"{V3_SCHEME}\n{digest}".encode(), hashlib.sha256).hexdigest()


def sign_v1(string_to_sign: str, secret: str) -> str:
    """Base64 HMAC-SHA1 of ``string_to_sign`` keyed with ``secret + "&"``."""
    mac = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _verify_v3(req: SignedRequest, secret: str) -> None:
    auth = _parse_authorization(req)
    payload_hash = hashlib.sha256(req.body).hexdigest()
    for declared in _header_values(req, "x-acs-content-sha256"):
        if declared.strip().lower() != payload_hash:
            raise SignatureDoesNotMatch(
                "the SHA-256 of the body received differs from x-acs-content-sha256: "
                "the body was altered or cut on the way."
            )
    canonical = canonical_request_v3(req, auth.signed_headers, payload_hash=payload_hash)
    if not _same(sign_v3(canonical, secret), auth.signature):
        raise SignatureDoesNotMatch(
            f"the request signature does not match; the server's canonical request is: {canonical!r}"
        )


def _verify_v1(req: SignedRequest, secret: str) -> None:
    string_to_sign = string_to_sign_v1(req)
    # Base64 has no spaces: a client that left a '+' unescaped had it decoded to one.
    received = _v1_params(req)["Signature"].replace(" ", "+")
    if not _same(sign_v1(string_to_sign, secret), received):
        raise SignatureDoesNotMatch(
            f"the request signature does not match; the server's string to sign is: {string_to_sign}"
        )


def _parse_authorization(req: SignedRequest) -> _Authorization:
    value = _one_header(req, "authorization").strip()
    scheme, _, rest = value.partition(" ")
    if scheme != V3_SCHEME:
        raise IncompleteSignature(
            f"the Authorization scheme {_show(scheme)} is not supported; use {V3_SCHEME}, "
            f"or the V1 {V1_METHOD} parameters."
        )
    parts: dict[str, str] = {}
    for item in filter(None, (item.strip() for item in rest.split(","))):
        name, eq, part = item.partition("=")
        part = part.strip()
        if not eq or name not in _V3_PARTS or any(c.isspace() for c in part):
            raise IncompleteSignature(
                f"the Authorization header has a malformed part {_show(item)}; "
                "expected Credential=<AccessKeyId>,SignedHeaders=<h1;h2>,Signature=<hex>."
            )
        if name in parts:
            raise IncompleteSignature(f"the Authorization header gives {name} twice.")
        parts[name] = part
    missing = [name for name in _V3_PARTS if not parts.get(name)]
    if missing:
        raise IncompleteSignature(f"the Authorization header lacks {', '.join(missing)}.")
    if not _HEX64.fullmatch(parts["Signature"]):
        raise IncompleteSignature("the Authorization Signature must be 64 hex digits.")
    signed = parts["SignedHeaders"].split(";")
    if any(not h or h != h.lower() for h in signed) or signed != sorted(set(signed)):
        raise IncompleteSignature("SignedHeaders must list lower-case header names, sorted, without repeats.")
    _check_signed_headers(req, signed)
    return _Authorization(parts["Credential"], signed, parts["Signature"].lower())


def _check_signed_headers(req: SignedRequest, signed: list[str]) -> None:
    present = {name for name, _ in req.headers}
    absent = [h for h in ("host", "x-acs-date", "x-acs-signature-nonce") if h not in present]
    if absent:
        raise IncompleteSignature(f"the request lacks the header(s) {', '.join(absent)}.")
    not_sent = [h for h in signed if h not in present]
    if not_sent:
        raise IncompleteSignature(f"SignedHeaders lists header(s) not sent: {', '.join(not_sent)}.")
    unsigned = sorted(h for h in present if (h == "host" or h.startswith("x-acs-")) and h not in signed)
    if unsigned:
        raise IncompleteSignature(f"the header(s) {', '.join(unsigned)} must be listed in SignedHeaders.")


def _v1_params(req: SignedRequest) -> dict[str, str]:
    params = _unique(chain(req.query, req.form))
    missing = [name for name in _V1_FIELDS if not params.get(name)]
    if missing:
        raise IncompleteSignature(f"the V1 signature lacks {', '.join(missing)}.")
    if params["SignatureMethod"] != V1_METHOD:
        raise IncompleteSignature(
            f"SignatureMethod {_show(params['SignatureMethod'])} is not supported; "
            f"supported: {V1_METHOD}, or {V3_SCHEME} in the Authorization header."
        )
    if params["SignatureVersion"] != V1_VERSION:
        raise IncompleteSignature(f"SignatureVersion must be {V1_VERSION} with {V1_METHOD}.")
    return params


def _unique(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise InvalidParameter(name, "it is given more than once.")
        out[name] = value
    return out


def _header_values(req: SignedRequest, name: str) -> list[str]:
    return [value for n, value in req.headers if n == name]


def _one_header(req: SignedRequest, name: str) -> str:
    values = _header_values(req, name)
    if len(values) != 1:
        raise IncompleteSignature(f"the header {name} must be sent exactly once, not {len(values)} times.")
    return values[0]


def _nonce(value: str, name: str) -> str:
    if not value or len(value) > MAX_NONCE_CHARS:
        raise IncompleteSignature(f"{name} must be 1 to {MAX_NONCE_CHARS} characters.")
    return value


def _parse_timestamp(value: str, name: str) -> datetime:
    match = _TIMESTAMP.fullmatch(value)
    if match:
        try:
            year, month, day, hour, minute, second = (int(g) for g in match.groups())
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass  # a well-formed but impossible date, e.g. month 13
    raise InvalidTimeStampFormat(
        f"{name} {_show(value)} is not a valid UTC time of the form YYYY-MM-DDTHH:MM:SSZ."
    )


def _encode(value: str) -> str:
    return quote(value, safe="~")


def _same(expected: str, received: str) -> bool:
    return hmac.compare_digest(expected.encode(), received.encode())


def _show(value: str, limit: int = 64) -> str:
    """Quote a client-supplied value for a message, cut so a message stays small."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
