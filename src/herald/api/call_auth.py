"""Who is joining a call: the call token, from ``Authorization: Bearer`` or the ``token`` parameter."""

from __future__ import annotations

from starlette.datastructures import Headers, QueryParams

from herald.auth.tokens import CallGrant
from herald.errors import MissingParameter
from herald.runtime import Runtime


def call_token(headers: Headers, query: QueryParams) -> str:
    """The call token: ``Authorization: Bearer …`` (kept out of URLs and logs) or the ``token`` parameter."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = query.get("token")
    if not token:
        raise MissingParameter("token")
    return token


def call_grant(runtime: Runtime, headers: Headers, query: QueryParams, channel_id: str) -> CallGrant:
    """The verified grant to join ``channel_id``; ``MissingParameter`` or ``InvalidToken`` otherwise."""
    token = call_token(headers, query)
    return runtime.tokens.verify(token, channel_id=channel_id, now=runtime.clock.now())
