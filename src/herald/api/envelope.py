"""The ICE error envelope, and the one mapping from wire codes to HTTP statuses."""

from __future__ import annotations

import socket

from starlette.responses import JSONResponse

from herald.errors import AuthError, BadRequest, HeraldError, NotFound

HOST_ID = socket.gethostname()

_STATUS_BY_CODE: dict[str, int] = {
    "InvalidAccessKeyId.NotFound": 404,
    "InvalidApi.NotFound": 404,
    "InvalidAction.NotFound": 404,
    "InvalidToken": 401,
    "Forbidden.RAM": 403,
    "Throttling.User": 400,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "RequestTooLarge": 413,
    "UnsupportedMediaType": 415,
    "UnsupportedHTTPMethod": 405,
}


def status_for(error: HeraldError) -> int:
    if error.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[error.code]
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, BadRequest | AuthError):
        return 400
    return 500


def error_response(error: HeraldError, request_id: str) -> JSONResponse:
    body = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": error.code,
        "Message": error.message,
        "Recommend": error.recommend,
        **error.envelope_fields(),
    }
    return JSONResponse(body, status_code=status_for(error), headers=dict(error.headers()))
