"""A Starlette request as the signature checker sees it (``SignedRequest``): for ``POST /`` and the other
signed routes (the event stream)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from herald.api.body import read_body
from herald.api.signing import SignedRequest
from herald.errors import InvalidParameter

MAX_BODY_BYTES = 1 << 20


def decode_pairs(raw: bytes, where: str) -> list[tuple[str, str]]:
    """``a=1&b=2`` pairs in order; ``InvalidParameter`` naming ``where`` if they are not UTF-8."""
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidParameter(where, "must be UTF-8 percent-encoded.") from None


def as_signed(
    request: Request, *, query: list[tuple[str, str]], form: list[tuple[str, str]], body: bytes
) -> SignedRequest:
    return SignedRequest(
        method=request.method,
        path=request.scope.get("raw_path", b"/").decode("latin-1").split("?")[0] or "/",
        query=query,
        form=form,
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=body,
    )


async def signed_request(request: Request) -> SignedRequest:
    """A request whose parameters are in its query string only (a ``GET``)."""
    body = await read_body(request, MAX_BODY_BYTES)
    query = decode_pairs(request.scope.get("query_string", b""), "query string")
    return as_signed(request, query=query, form=[], body=body)
