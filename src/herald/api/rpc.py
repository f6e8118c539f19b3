"""``POST /``, ICE's RPC style: parse, authenticate, dispatch by action and version, answer.

Every request is logged with its request id (and its ``InstanceId``, when it names one) and counted in
``herald_api_requests_total``/``herald_api_request_seconds`` (docs/observability.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald import ids
from herald.api.access import admit, authenticate, relative_id
from herald.api.actions import ACTIONS
from herald.api.body import read_body
from herald.api.context import API_VERSION, ActionContext
from herald.api.envelope import error_response
from herald.api.metrics import api_metrics
from herald.api.outage import as_unavailable
from herald.api.params import Params
from herald.api.signed import MAX_BODY_BYTES, as_signed, decode_pairs
from herald.errors import ApiNotFound, HeraldError, InternalError, InvalidParameter
from herald.observability.logs import log_context, set_log_context
from herald.runtime import Runtime

_log = logging.getLogger(__name__)

UNKNOWN_ACTION = "unknown"
"""The ``action`` label of a request that names no implemented action."""
MAX_LOGGED_ID_CHARS = 64
_SIGNATURE_PARAMS = frozenset(
    {"Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
     "SignatureNonce", "Timestamp", "RegionId"}
)  # fmt: skip


class _Labels:
    """What is known of a request for its metrics, filled in as it is parsed."""

    __slots__ = ("action",)

    def __init__(self) -> None:
        self.action = UNKNOWN_ACTION


async def handle_rpc(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    metrics = api_metrics(request.app)
    started_ns = runtime.clock.monotonic_ns()
    request_id = ids.request_id()
    labels = _Labels()
    with log_context(request_id=request_id):
        try:
            body = await _handle(request, runtime, request_id, labels)
        except HeraldError as exc:
            code = exc.code
            _log.info("request %s refused: %s %s", request_id, exc.code, exc.message)
            response = error_response(exc, request_id)
        except Exception as exc:
            outage = as_unavailable(exc)
            if outage is not None:
                code = outage.code
                _log.warning("request %s: %s (%s)", request_id, outage.message, exc)
                response = error_response(outage, request_id)
            else:
                code = InternalError.code
                _log.exception("request %s failed", request_id)
                response = error_response(
                    InternalError("An internal error occurred; it has been logged."), request_id
                )
        else:
            code = "OK"
            response = JSONResponse({"RequestId": request_id, **body})
    metrics.record(labels.action, code, (runtime.clock.monotonic_ns() - started_ns) / 1e9)
    return response


async def _handle(request: Request, runtime: Runtime, request_id: str, labels: _Labels) -> dict[str, object]:
    body = await read_body(request, MAX_BODY_BYTES)
    query = decode_pairs(request.scope.get("query_string", b""), "query string")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = decode_pairs(body, "body") if content_type == "application/x-www-form-urlencoded" else []
    _label_and_bind(request.headers.get("x-acs-action"), (*query, *form), labels)
    key = await authenticate(runtime, as_signed(request, query=query, form=form, body=body))

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
    assert action is not None
    admit(runtime, key, action, relative_id(values), request)
    params = Params({k: v for k, v in values.items() if k not in _SIGNATURE_PARAMS})
    context = ActionContext(
        instances=runtime.actions,
        idempotency=runtime.idempotency,
        owner=key.account_id,
        request_id=request_id,
        params=params,
        fetch_policy=runtime.fetch_policy,
    )
    _log.debug("request %s: %s by %s (%s)", request_id, action, key.access_key_id, key.principal)
    return await handler(context, params)


def _label_and_bind(header_action: str | None, pairs: Iterable[tuple[str, str]], labels: _Labels) -> None:
    """Before authentication, so a refused request is counted under its action and logged with its
    instance: the action (an implemented one, else ``unknown``, which keeps the label set bounded) and
    the ``InstanceId`` parameter, bound to the log context."""
    action = header_action or None
    for name, value in pairs:
        if name == "Action" and action is None:
            action = value
        elif name == "InstanceId" and 0 < len(value) <= MAX_LOGGED_ID_CHARS:
            set_log_context(instance_id=value)
    if action in ACTIONS:
        labels.action = action
