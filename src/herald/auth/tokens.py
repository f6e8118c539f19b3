"""Call tokens: signed (HS256 JWT), expiring, bound to one channel and one user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from herald.errors import InvalidToken

_ALGORITHM = "HS256"
_ISSUER = "herald"


@dataclass(frozen=True, slots=True)
class CallGrant:
    channel_id: str
    user_id: str
    expires_at: datetime


class CallTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the call-token secret must be at least 32 bytes")
        self._secret = secret

    def mint(self, channel_id: str, user_id: str, *, now: datetime, expire_s: int) -> str:
        claims = {
            "iss": _ISSUER,
            "ch": channel_id,
            "sub": user_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=expire_s)).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str, *, channel_id: str, now: datetime) -> CallGrant:
        """Check signature, expiry (against ``now``) and channel; ``InvalidToken`` says which failed."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"verify_exp": False, "require": ["exp", "ch", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"The call token is invalid: {exc}.") from None
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
        if now >= expires_at:
            raise InvalidToken("The call token has expired.")
        if claims["ch"] != channel_id:
            raise InvalidToken("The call token is for another channel.")
        return CallGrant(channel_id=channel_id, user_id=str(claims["sub"]), expires_at=expires_at)
