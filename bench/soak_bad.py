"""The soak run's trickle of bad requests: each must get a 4xx with the ICE envelope, never a 5xx.

Forbidden audio URLs are written as IP literals, which Herald refuses up front (``check_url``) without
connecting anywhere; none is a host name that would need a lookup.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Final

from bench.rpc import RpcClient, signed_request
from bench.soak_wire import Requests

FORBIDDEN_URLS: Final = (
    "http://10.0.0.1/speech.wav",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:9/speech.wav",
    "http://[::1]/speech.wav",
    "http://192.168.1.1/speech.wav",
    "file:///etc/passwd",
)
KINDS: Final = (
    "bad-signature",
    "unknown-instance",
    "long-text",
    "bad-agent-config",
    "oversized-body",
    "unknown-action",
    "forbidden-url",
    "bad-policy",
    "expired-date",
    "replayed-nonce",
    "token-mismatch",
)
OVERSIZED_BYTES: Final = 2 * 1024 * 1024


class BadRequests:
    """Sends one bad request of a kind on demand; ``live()`` names an instance to aim at (or ``None``)."""

    def __init__(
        self,
        requests: Requests,
        host: str,
        port: int,
        key_id: str,
        secret: str,
        live: Callable[[], str | None],
        used_tokens: list[tuple[str, str]],
    ) -> None:
        self._requests = requests
        self._host, self._port = host, port
        self._key_id, self._secret = key_id, secret
        self._live = live
        self._used_tokens = used_tokens
        self.api = RpcClient(host, port, key_id, secret)
        self._wrong_key = RpcClient(host, port, key_id, secret + "x")

    async def run(self, rng: random.Random, deadline_s: float, coverage: list[str]) -> None:
        """Until ``deadline_s``: every kind once (in ``coverage`` order), then random kinds, ~1.4 a second."""
        while time.monotonic() < deadline_s:
            kind = coverage.pop(0) if coverage else rng.choice(KINDS)
            await self.send(kind, rng)
            await asyncio.sleep(min(rng.uniform(0.3, 1.1), max(0.0, deadline_s - time.monotonic())))

    async def send(self, kind: str, rng: random.Random) -> None:
        live = self._live() or "i-" + "0" * 30
        call = self._requests.call
        if kind == "bad-signature":
            await call(self._wrong_key, kind, "DescribeAIAgentInstance", {"InstanceId": live}, ok=False)
        elif kind == "unknown-instance":
            action = rng.choice(("DescribeAIAgentInstance", "SendAIAgentSpeech", "StopAIAgentInstance"))
            params = {"InstanceId": f"soak-missing-{rng.randrange(10**9)}"}
            if action == "SendAIAgentSpeech":
                params["Text"] = "Is anybody there?"
            await call(self.api, kind, action, params, ok=False)
        elif kind == "long-text":
            text = "word " * rng.randint(205, 400)  # over 1024 characters
            await call(self.api, kind, "SendAIAgentSpeech", {"InstanceId": live, "Text": text}, ok=False)
        elif kind == "bad-agent-config":
            config = rng.choice(('{"Volume": ', "not json", "[1, 2]", '{"Volume": 9999}'))
            if rng.random() < 0.5:
                params = {"InstanceId": live, "AgentConfig": config}
                await call(self.api, kind, "UpdateAIAgentInstance", params, ok=False)
            else:
                params = {"AIAgentId": "default", "AgentConfig": config}
                await call(self.api, kind, "GenerateAIAgentCall", params, ok=False)
        elif kind == "oversized-body":
            await self._oversized(live)
        elif kind == "unknown-action":
            action = rng.choice(("DescribeAIAgentInstances", "DeleteEverything", "SendAIAgentSpeechNow"))
            await call(self.api, kind, action, {"InstanceId": live}, ok=False)
        elif kind == "forbidden-url":
            params = {"InstanceId": live, "Type": "AudioUrl", "Text": rng.choice(FORBIDDEN_URLS)}
            await call(self.api, kind, "SendAIAgentSpeech", params, ok=False)
        elif kind == "bad-policy":
            params = {"InstanceId": live, "Text": "Maybe.", "Policy": rng.choice(("sometimes", "", "queue"))}
            await call(self.api, kind, "SendAIAgentSpeech", params, ok=False)
        elif kind == "expired-date":
            request = self._signed(
                "DescribeAIAgentInstance", {"InstanceId": live}, date="2020-01-01T00:00:00Z"
            )
            await self._requests.raw(kind, self._host, self._port, request)
        elif kind == "replayed-nonce":
            request = self._signed("DescribeAIAgentInstance", {"InstanceId": live})
            await self._requests.raw("describe", self._host, self._port, request, ok=True)
            await self._requests.raw(kind, self._host, self._port, request)
        elif kind == "token-mismatch":
            if not self._used_tokens:
                return await self.send("bad-policy", rng)
            instance_id, token = rng.choice(self._used_tokens)
            params = {"InstanceId": instance_id, "Text": "Something else entirely.", "ClientToken": token}
            await call(self.api, kind, "SendAIAgentSpeech", params, ok=False)
        else:
            raise ValueError(f"unknown bad request {kind!r}")
        return None

    def _signed(self, action: str, params: dict[str, str], *, date: str | None = None) -> bytes:
        host = f"{self._host}:{self._port}"
        return signed_request(host, action, params, self._key_id, self._secret, date=date)

    async def _oversized(self, live: str) -> None:
        """A body declared over the 1 MiB limit: refused from its headers (413), before it is read."""
        request = self._signed("DescribeAIAgentInstance", {"InstanceId": live})
        request = request.replace(
            b"content-length: 0",
            f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {OVERSIZED_BYTES}".encode(),
        )
        await self._requests.raw("oversized-body", self._host, self._port, request)

    async def close(self) -> None:
        await self.api.close()
        await self._wrong_key.close()
