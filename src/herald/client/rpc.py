"""A tiny signed client of Herald's API: ``POST /`` with the parameters in the query, V3-signed.

The signature (``ACS3-HMAC-SHA256``) is computed by the same functions the server checks it with
(``herald.api.signing``), over the request exactly as sent.

    async with RpcClient("http://127.0.0.1:8080", key_id, secret) as api:
        body = await api.call("SendAIAgentSpeech", {"InstanceId": instance_id, "Text": "Hello"})
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, urlsplit

import httpx

from herald.api.signing import V3_SCHEME, SignedRequest, canonical_request_v3, sign_v3
from herald.client.errors import ClientError, Refused, unreachable

API_VERSION: Final = "2020-11-09"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Call:
    """What ``GenerateAIAgentCall`` answered."""

    instance_id: str
    channel_id: str
    user_id: str
    token: str
    request_id: str


def signed_headers(
    host: str,
    action: str,
    params: Mapping[str, str],
    key_id: str,
    secret: str,
    *,
    nonce: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """The headers of a V3-signed ``POST /?params`` with an empty body, ``authorization`` included."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": date or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": nonce or secrets.token_hex(16),
        "x-acs-version": API_VERSION,
    }
    names = sorted(headers)
    request = SignedRequest(
        method="POST",
        path="/",
        query=list(params.items()),
        form=[],
        headers=list(headers.items()),
        body=b"",
    )
    signature = sign_v3(canonical_request_v3(request, names, payload_hash=EMPTY_SHA256), secret)
    headers["authorization"] = (
        f"{V3_SCHEME} Credential={key_id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    return headers


class RpcClient:
    """Signed calls to one Herald server (``endpoint``: its base URL, e.g. ``http://127.0.0.1:8080``)."""

    def __init__(
        self,
        endpoint: str,
        key_id: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._host = urlsplit(self.endpoint).netloc
        self._key_id = key_id
        self._secret = secret
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(trust_env=False, timeout=timeout_s, transport=transport)

    async def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The answer's JSON body; ``Refused`` (the ICE error) if the server refuses, or ``Unreachable``."""
        headers = signed_headers(self._host, action, params, self._key_id, self._secret)
        # The query goes out as it is canonicalised (RFC 3986), so what the server decodes is what was signed.
        query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))
        try:
            response = await self._http.post(f"{self.endpoint}/?{query}", headers=headers)
        except httpx.TransportError as exc:
            raise unreachable(self.endpoint, exc, self._timeout_s) from None
        if response.status_code != 200:
            raise Refused.from_response(response.status_code, response.content)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClientError(f"{self.endpoint} answered {action} with something that is not a JSON object")
        return body

    async def generate_call(self, agent_id: str) -> Call:
        """``GenerateAIAgentCall``: a new channel with an instance of ``agent_id`` in it, and a user token."""
        body = await self.call("GenerateAIAgentCall", {"AIAgentId": agent_id})
        try:
            return Call(
                body["InstanceId"],
                body["ChannelId"],
                body["UserId"],
                body["Token"],
                body.get("RequestId", ""),
            )
        except KeyError as exc:
            raise ClientError(f"GenerateAIAgentCall's answer lacks {exc}") from None

    async def speak(self, instance_id: str, text: str, **extra: str) -> str:
        """``SendAIAgentSpeech``; returns its ``RequestId`` (which the speech's outcome ``1900`` names)."""
        body = await self.call("SendAIAgentSpeech", {"InstanceId": instance_id, "Text": text, **extra})
        return str(body.get("RequestId", ""))

    async def stop(self, instance_id: str) -> None:
        await self.call("StopAIAgentInstance", {"InstanceId": instance_id})

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
