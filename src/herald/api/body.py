"""Reading a request body with a size limit: a declared or streamed body over it is refused early."""

from __future__ import annotations

from starlette.requests import Request

from herald.errors import RequestTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"The request body is over {max_bytes} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise RequestTooLarge(f"The request body is over {max_bytes} bytes.")
    return bytes(body)
