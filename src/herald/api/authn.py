"""Who is calling: checks a request's signature, key, timestamp and nonce, and returns the caller's key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from herald.api.signing import SignedRequest, identify, verify
from herald.auth.keys import AccessKey, KeyStore
from herald.auth.nonces import NonceCache
from herald.clock import Clock
from herald.errors import (
    InvalidAccessKeyIdInactive,
    InvalidAccessKeyIdNotFound,
    InvalidTimeStampExpired,
    SignatureNonceUsed,
)


class Authenticator:
    """Authenticates signed OpenAPI requests (V3 ``ACS3-HMAC-SHA256`` or V1 ``HMAC-SHA1``)."""

    def __init__(
        self, keys: KeyStore, nonces: NonceCache, clock: Clock, *, max_skew_s: int = 15 * 60
    ) -> None:
        self._keys = keys
        self._nonces = nonces
        self._clock = clock
        self._max_skew = timedelta(seconds=max_skew_s)

    def authenticate(self, req: SignedRequest) -> AccessKey:
        """Return the key that signed ``req``, or raise the ``AuthError`` a client should see.

        Checks, in order: signature fields, key known and active, timestamp within ``max_skew_s`` of the
        clock, signature, nonce unused. The nonce is remembered only once the signature is valid, so a
        forged request cannot burn it.
        """
        identity = identify(req)
        key = self._keys.get(identity.access_key_id)
        if key is None:
            raise InvalidAccessKeyIdNotFound(f"the AccessKeyId {_show(identity.access_key_id)} is not found.")
        if not key.active:
            raise InvalidAccessKeyIdInactive(f"the AccessKeyId {_show(identity.access_key_id)} is disabled.")
        now = self._clock.now()
        if abs(now - identity.timestamp) > self._max_skew:
            raise InvalidTimeStampExpired(
                f"the request's time {_iso(identity.timestamp)} is more than "
                f"{int(self._max_skew.total_seconds())} s from the server's time {_iso(now)}."
            )
        verify(req, identity, key.secret)
        if not self._nonces.check_and_remember(identity.access_key_id, identity.nonce):
            raise SignatureNonceUsed(f"the signature nonce {_show(identity.nonce)} has been used recently.")
        return key


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(value: str, limit: int = 64) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
