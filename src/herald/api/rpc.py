"""``POST /``, ICE's RPC style: parse, authenticate, dispatch by action and version, answer."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald import ids
from herald.api.actions import ACTIONS
from herald.api.context import API_VERSION, ActionContext
from herald.api.envelope import error_response
from herald.api.params import Params
from herald.api.signing import SignedRequest
from herald.errors import ApiNotFound, HeraldError, InternalError, InvalidParameter, RequestTooLarge
from herald.runtime import Runtime

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
_SIGNATURE_PARAMS = frozenset(
    {"Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
     "SignatureNonce", "Timestamp", "RegionId"}
)  # fmt: skip


def _decode_pairs(raw: bytes, where: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidParameter(where, "must be UTF-8 percent-encoded.") from None


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
    return bytes(body)


async def handle_rpc(request: Request) -> Response:
    request_id = ids.request_id()
    try:
        body = await _handle(request, request_id)
    except HeraldError as exc:
        _log.info("request %s refused: %s %s", request_id, exc.code, exc.message)
        return error_response(exc, request_id)
    except Exception:
        _log.exception("request %s failed", request_id)
        return error_response(InternalError("An internal error occurred; it has been logged."), request_id)
    return JSONResponse({"RequestId": request_id, **body})


async def _handle(request: Request, request_id: str) -> dict[str, object]:
    runtime: Runtime = request.app.state.runtime
    body = await _read_body(request)
    query = _decode_pairs(request.scope.get("query_string", b""), "query string")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = _decode_pairs(body, "body") if content_type == "application/x-www-form-urlencoded" else []
    signed = SignedRequest(
        method=request.method,
        path=request.scope.get("raw_path", b"/").decode("latin-1").split("?")[0] or "/",
        query=query,
        form=form,
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=body,
    )
    key = runtime.authenticator.authenticate(signed)

    values: dict[str, str] = {}
    for name, value in (*query, *form):
        if name in values:
            raise InvalidParameter(name, "is given more than once.")
        values[name] = value
    action = request.headers.get("x-acs-action") or values.get("Action")
    version = request.headers.get("x-acs-version") or values.get("Version")
    handler = ACTIONS.get(action or "")
    if handler is None or version != API_VERSION:
        what = f"action {action!r}" if handler is None else f"version {version!r} of {action}"
        raise ApiNotFound(f"The {what} is not supported; Herald speaks ICE API version {API_VERSION}.")
    params = Params({k: v for k, v in values.items() if k not in _SIGNATURE_PARAMS})
    context = ActionContext(
        instances=runtime.instances,
        idempotency=runtime.idempotency,
        owner=key.access_key_id,
        request_id=request_id,
        params=params,
        fetch_policy=runtime.fetch_policy,
    )
    _log.debug("request %s: %s by %s", request_id, action, key.access_key_id)
    return await handler(context, params)
