"""The soak run's clients: a witness listener per call, a prober, raw requests, and the request log.

``Witness`` is the cheap audio-WebSocket listener of ``bench/listeners.py`` (counters, no audio) that also
hands every data-channel message to a callback (the ``1900`` outcomes, the ``1001`` states) and can send
one (``1119``, query the state). ``Requests`` is the one door every API request of the run goes through:
it counts answers by kind and keeps the evidence of every answer that was not the one expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from bench.listeners import Listener
from bench.rpc import Connection, HttpError, RpcClient

REQUEST_TIMEOUT_S: Final = 30.0
_OP_TEXT_FIN: Final = 0x81


class Witness(Listener):
    """One audio WebSocket; every data-channel message goes to ``on_message`` as parsed JSON."""

    def __init__(
        self, host: str, target: str, histogram: list[int], on_message: Callable[[Any], None]
    ) -> None:
        super().__init__(host, target, histogram, set(), {})
        self._on_message = on_message
        self.last_state: int | None = None
        self._state_changed = asyncio.Event()
        self.gone = asyncio.Event()
        """Set once the connection is closed (by either side)."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.gone.set()

    def _text(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            message = {"type": -1, "raw": payload[:200].decode(errors="replace")}
        if isinstance(message, dict) and message.get("type") == 1001:
            self.last_state = message.get("data", {}).get("state")
            self._state_changed.set()
        self._on_message(message)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(_OP_TEXT_FIN, json.dumps(message, separators=(",", ":")).encode())

    def close(self) -> None:
        self._close()

    async def query_state(self, timeout_s: float) -> int | None:
        """Ask the agent's state (``1119``); the ``1001`` answer's state, ``None`` if none came in time."""
        self._state_changed.clear()
        self.send_json({"type": 1119, "data": {}})
        try:
            await asyncio.wait_for(self._state_changed.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.last_state


async def open_witness(url: str, histogram: list[int], on_message: Callable[[Any], None]) -> Witness:
    """Connect a ``Witness`` to an audio URL and wait for the upgrade."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, witness = await loop.create_connection(
        lambda: Witness(f"{host}:{port}", target, histogram, on_message), host, port
    )
    await asyncio.wait_for(witness.opened, 10)
    return witness


async def wait_closed(witness: Witness, timeout_s: float) -> bool:
    """Wait until the server closed the WebSocket; whether it did in time."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(witness.gone.wait(), timeout_s)
    return witness.gone.is_set()


@dataclass
class Requests:
    """Every request of the run: answers counted by ``(kind, answer)``; unexpected ones kept as evidence.

    ``answer`` is ``200``, ``"4xx Code"``, ``"5xx Code"`` or ``"transport: Error"``.
    """

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    async def call(
        self, client: RpcClient, kind: str, action: str, params: dict[str, str], *, ok: bool = True
    ) -> dict[str, Any] | None:
        """Send one signed request. ``ok``: a 200 is expected (else a 4xx with the ICE envelope).
        Returns the answer's body on 200, else ``None``."""
        try:
            body, _ = await asyncio.wait_for(client.call(action, params), REQUEST_TIMEOUT_S)
        except HttpError as exc:
            self.answer(kind, exc.status, exc.body, ok=ok, sent=f"{action} {_brief(params)}")
            return None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await client.close()  # a half-read answer must not be taken for the next one's
            self._transport(kind, exc, f"{action} {_brief(params)}")
            return None
        self.answer(kind, 200, b"", ok=ok, sent=f"{action} {_brief(params)}")
        return body

    async def raw(self, kind: str, host: str, port: int, request: bytes, *, ok: bool = False) -> int | None:
        """Send hand-made request bytes on a connection of their own; returns the status."""
        try:
            connection = await Connection.open(host, port)
            try:
                status, body = await asyncio.wait_for(connection.exchange(request), REQUEST_TIMEOUT_S)
            finally:
                await connection.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self._transport(kind, exc, repr(request[:120]))
            return None
        self.answer(kind, status, body, ok=ok, sent=repr(request[:120]))
        return status

    def answer(self, kind: str, status: int, body: bytes, *, ok: bool, sent: str) -> None:
        code = _envelope_code(body) if status != 200 else None
        label = "200" if status == 200 else f"{status} {code or '(no envelope)'}"
        self.counts[(kind, label)] += 1
        evidence = f"{kind}: sent {sent} -> HTTP {status} {body[:300]!r}"
        if status >= 500:
            self.server_errors.append(evidence)
        if ok and status != 200:
            self.unexpected.append(evidence)
        elif not ok and not (400 <= status < 500 and code is not None):
            self.unexpected.append(f"expected a 4xx with the ICE envelope; {evidence}")

    def _transport(self, kind: str, exc: BaseException, sent: str) -> None:
        self.counts[(kind, f"transport: {type(exc).__name__}")] += 1
        self.unexpected.append(f"{kind}: sent {sent} -> {type(exc).__name__}: {exc}")


def _envelope_code(body: bytes) -> str | None:
    """The ``Code`` of an ICE error envelope (which must also carry a ``RequestId``), else ``None``."""
    with contextlib.suppress(ValueError):
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("Code"), str) and parsed.get("RequestId"):
            return str(parsed["Code"])
    return None


def _brief(params: dict[str, str]) -> str:
    return json.dumps({k: v if len(v) <= 80 else f"{v[:40]}...({len(v)} chars)" for k, v in params.items()})


@dataclass
class Prober:
    """``DescribeAIAgentInstance`` of one instance every ``period_s``, on a connection of its own."""

    api: RpcClient
    instance_id: str
    period_s: float = 0.25
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        next_s = begun_s = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    self.api.call("DescribeAIAgentInstance", {"InstanceId": self.instance_id}), 10
                )
            except (HttpError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                await self.api.close()
                self.failures.append(f"+{started - begun_s:.1f} s {type(exc).__name__}: {str(exc)[:200]}")
            else:
                self.latencies_ms.append((time.monotonic() - started) * 1000)
            next_s += self.period_s
            now = time.monotonic()
            if next_s < now:  # a slow answer: keep the schedule, do not burst to catch up
                next_s = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next_s - now)
