"""The Authenticator: key lookup, timestamp window, signature and nonce, in that order."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest

from herald.api.authn import Authenticator
from herald.api.signing import SignedRequest
from herald.auth.keys import AccessKey, StaticKeyStore
from herald.auth.nonces import NonceCache
from herald.errors import (
    IncompleteSignature,
    InvalidAccessKeyIdInactive,
    InvalidAccessKeyIdNotFound,
    InvalidTimeStampExpired,
    SignatureDoesNotMatch,
    SignatureNonceUsed,
)
from herald.testing.clock import VirtualClock

Signer = Callable[..., SignedRequest]

NOW = datetime(2026, 11, 21, 6, 5, 29, tzinfo=UTC)
ACTIVE = AccessKey("ak-active", "secret-1")
OTHER = AccessKey("ak-other", "secret-2")
INACTIVE = AccessKey("ak-inactive", "secret-3", active=False)


def v3(
    key: AccessKey, *, nonce: str = "n-1", at: datetime = NOW, secret: str | None = None, text: str = "hi"
) -> SignedRequest:
    """A request signed with the SDK's V3 signer, as the server receives it."""
    payload_hash = hashlib.sha256(b"").hexdigest()
    req = DaraRequest()
    req.method = "POST"
    req.pathname = "/"
    req.query = {"InstanceId": "i-1", "Text": text}
    req.headers = {
        "host": "127.0.0.1:8080",
        "x-acs-action": "SendAIAgentSpeech",
        "x-acs-version": "2020-11-09",
        "x-acs-date": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": payload_hash,
    }
    auth = Utils.get_authorization(
        req, "ACS3-HMAC-SHA256", payload_hash, key.access_key_id, secret or key.secret
    )
    headers = [*req.headers.items(), ("authorization", auth)]
    return SignedRequest("POST", "/", parse_qsl(urlencode(req.query)), [], headers, b"")


def v1(key: AccessKey, *, nonce: str = "n-1", at: datetime = NOW) -> SignedRequest:
    """A request signed with the SDK's V1 signer, as the server receives it."""
    params = {
        "Action": "SendAIAgentSpeech",
        "Version": "2020-11-09",
        "Format": "json",
        "InstanceId": "i-1",
        "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SignatureNonce": nonce,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": key.access_key_id,
    }
    params["Signature"] = Utils.get_rpcsignature(params, "POST", key.secret)
    return SignedRequest("POST", "/", parse_qsl(urlencode(params)), [], [("host", "127.0.0.1:8080")], b"")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=NOW)


@pytest.fixture
def authn(clock: VirtualClock) -> Authenticator:
    keys = StaticKeyStore([ACTIVE, OTHER, INACTIVE])
    return Authenticator(keys, NonceCache(clock), clock)


@pytest.mark.parametrize("sign", [v3, v1], ids=["v3", "v1"])
def test_a_signed_request_yields_its_key(authn: Authenticator, sign: Signer) -> None:
    assert authn.authenticate(sign(ACTIVE)) == ACTIVE


def test_unknown_key(authn: Authenticator) -> None:
    with pytest.raises(InvalidAccessKeyIdNotFound, match="ak-nobody"):
        authn.authenticate(v3(AccessKey("ak-nobody", "x")))


def test_inactive_key(authn: Authenticator) -> None:
    with pytest.raises(InvalidAccessKeyIdInactive, match="ak-inactive"):
        authn.authenticate(v3(INACTIVE))


def test_unsigned_request(authn: Authenticator) -> None:
    with pytest.raises(IncompleteSignature, match="not signed"):
        authn.authenticate(SignedRequest("POST", "/", [], [], [("host", "h")], b""))


@pytest.mark.parametrize("skew", [timedelta(minutes=-15), timedelta(minutes=15), timedelta(0)])
@pytest.mark.parametrize("sign", [v3, v1], ids=["v3", "v1"])
def test_skew_up_to_15_minutes_is_accepted(authn: Authenticator, sign: Signer, skew: timedelta) -> None:
    assert authn.authenticate(sign(ACTIVE, at=NOW + skew)) == ACTIVE


@pytest.mark.parametrize("skew", [timedelta(minutes=-15, seconds=-1), timedelta(minutes=15, seconds=1)])
@pytest.mark.parametrize("sign", [v3, v1], ids=["v3", "v1"])
def test_skew_over_15_minutes_is_expired(authn: Authenticator, sign: Signer, skew: timedelta) -> None:
    with pytest.raises(InvalidTimeStampExpired, match="2026-11-21T06:05:29Z"):
        authn.authenticate(sign(ACTIVE, at=NOW + skew))


async def test_the_window_follows_the_clock(authn: Authenticator, clock: VirtualClock) -> None:
    req = v3(ACTIVE)
    clock.advance_wall(timedelta(minutes=16))
    with pytest.raises(InvalidTimeStampExpired):
        authn.authenticate(req)


@pytest.mark.parametrize("sign", [v3, v1], ids=["v3", "v1"])
def test_a_replayed_nonce_is_refused(authn: Authenticator, sign: Signer) -> None:
    authn.authenticate(sign(ACTIVE, nonce="once"))
    with pytest.raises(SignatureNonceUsed, match="once"):
        authn.authenticate(sign(ACTIVE, nonce="once"))


def test_nonces_are_per_key(authn: Authenticator) -> None:
    authn.authenticate(v3(ACTIVE, nonce="shared"))
    assert authn.authenticate(v3(OTHER, nonce="shared")) == OTHER


def test_a_forged_request_does_not_burn_the_nonce(authn: Authenticator) -> None:
    with pytest.raises(SignatureDoesNotMatch):
        authn.authenticate(v3(ACTIVE, nonce="precious", secret="guessed"))
    assert authn.authenticate(v3(ACTIVE, nonce="precious")) == ACTIVE


def test_an_expired_request_does_not_burn_the_nonce(authn: Authenticator) -> None:
    with pytest.raises(InvalidTimeStampExpired):
        authn.authenticate(v3(ACTIVE, nonce="precious", at=NOW - timedelta(hours=1)))
    assert authn.authenticate(v3(ACTIVE, nonce="precious")) == ACTIVE


def test_checks_run_in_order(authn: Authenticator) -> None:
    stale = NOW - timedelta(hours=1)
    # An unknown key is reported before a stale timestamp, and a stale timestamp before a bad signature.
    with pytest.raises(InvalidAccessKeyIdNotFound):
        authn.authenticate(v3(AccessKey("ak-nobody", "x"), at=stale))
    with pytest.raises(InvalidTimeStampExpired):
        authn.authenticate(v3(ACTIVE, at=stale, secret="wrong"))


def test_max_skew_is_configurable(clock: VirtualClock) -> None:
    authn = Authenticator(StaticKeyStore([ACTIVE]), NonceCache(clock), clock, max_skew_s=60)
    authn.authenticate(v3(ACTIVE, at=NOW + timedelta(seconds=60)))
    with pytest.raises(InvalidTimeStampExpired, match="60 s"):
        authn.authenticate(v3(ACTIVE, at=NOW + timedelta(seconds=61)))
