"""One conversation call in an end-to-end test, over the audio WebSocket or WebRTC: ``talk_over_websocket``
and ``talk_over_webrtc`` give the same ``Talk`` (the fixtures, a server whose ``[llm]`` is one
``ScriptedLlm`` per module, are in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_USER_SUBTITLE,
    AudioRecorder,
    DataMessage,
    Microphone,
    Pcm,
    Spoken,
)
from herald.testing.llm_server import LlmRequest, ScriptedLlm
from herald.testing.rtc_client import RtcRecorder
from herald.testing.server import HeraldServer
from herald.testing.speech_track import SpeechTrack
from herald.testing.transcript import is_listening

ANSWER = "It is three o'clock. Anything else?"
"""What the module's LLM answers unless a test scripts otherwise."""
MSG_SPEECH_OUTCOME = 1900
WAIT_S = 25.0
"""How long any one step may take: generous, for a busy 2-core machine."""


class Mouth(Protocol):
    """The client's microphone: silence, and the clips it is told to say (``Microphone``, ``SpeechTrack``)."""

    def say(self, pcm: Pcm) -> asyncio.Future[Spoken]: ...


@dataclass
class Talk:
    """One call: its instance, the client's recording and microphone, and the LLM requests made since it
    began."""

    server: HeraldServer
    llm: ScriptedLlm
    instance_id: str
    rec: AudioRecorder
    mic: Mouth
    first_request: int

    async def llm_request(
        self, number: int, *, answered: bool = False, timeout_s: float = WAIT_S
    ) -> LlmRequest:
        """This call's LLM request ``number`` (from 0) once it arrived (``answered``: once answered)."""
        index = self.first_request + number
        deadline = time.monotonic() + timeout_s
        while True:
            requests = self.llm.requests
            if len(requests) > index and (not answered or requests[index].ended_s is not None):
                return requests[index]
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no LLM request #{number} within {timeout_s} s; transcript:\n{self.rec.describe()}"
                )
            await asyncio.sleep(0.02)

    def request_count(self) -> int:
        return len(self.llm.requests) - self.first_request

    async def api(self, action: str, **params: str) -> Any:
        """Any action on this instance through the SDK's generic call."""
        return await asyncio.to_thread(self.server.call, action, {"InstanceId": self.instance_id, **params})

    async def push(self, text: str, **params: str) -> str:
        """``SendAIAgentSpeech``; returns its RequestId (the utterance's ``requestId`` in ``1900``)."""
        body = await self.api("SendAIAgentSpeech", Text=text, **params)
        request_id: str = body["RequestId"]
        return request_id

    async def send_text(self, text: str) -> None:
        """``SendAIAgentText``: ``text`` is the user's turn."""
        await self.api("SendAIAgentText", Text=text)

    async def next_message(self, type: int, *, after: int, timeout_s: float = WAIT_S) -> DataMessage:
        return await self.rec.wait_for_message(type, after=after, timeout_s=timeout_s)

    async def outcome(
        self,
        request_id: str | None = None,
        *,
        after: int = -1,
        other_than: Collection[str] = (),
        timeout_s: float = 30,
    ) -> Any:
        """The data of the next ``1900`` after ``after``: of ``request_id`` if given, else of any utterance
        but those ``other_than``."""

        def wanted(message: DataMessage) -> bool:
            if request_id is not None:
                return bool(message.data["requestId"] == request_id)
            return message.data["requestId"] not in other_than

        message = await self.rec.wait_for_message(
            MSG_SPEECH_OUTCOME, wanted, after=after, timeout_s=timeout_s
        )
        return message.data

    async def hear(self, *, after: int, timeout_s: float = WAIT_S) -> DataMessage:
        """The next final user subtitle (``1003`` with ``end``) after ``after``: what the server heard the
        client say (partial ones come while the client speaks)."""
        return await self.rec.wait_for_message(
            MSG_USER_SUBTITLE, lambda m: m.data["end"] is True, after=after, timeout_s=timeout_s
        )


@contextlib.asynccontextmanager
async def _call(
    server: HeraldServer, llm: ScriptedLlm, agent_config: dict[str, Any] | None
) -> AsyncIterator[tuple[dict[str, Any], int]]:
    """A new call (``GenerateAIAgentCall``) and the LLM's request count before it; stopped after."""
    params = {"AIAgentId": "default"}
    if agent_config is not None:
        params["AgentConfig"] = json.dumps(agent_config)
    call = await asyncio.to_thread(server.call, "GenerateAIAgentCall", params)
    try:
        yield call, len(llm.requests)
    finally:
        with contextlib.suppress(Exception):  # the test may have ended the call
            await asyncio.to_thread(server.call, "StopAIAgentInstance", {"InstanceId": call["InstanceId"]})


@contextlib.asynccontextmanager
async def talk_over_websocket(
    server: HeraldServer, llm: ScriptedLlm, agent_config: dict[str, Any] | None = None, *, rate_hz: int
) -> AsyncIterator[Talk]:
    """A call whose client sends its microphone as binary PCM at ``rate_hz`` on the audio WebSocket."""
    async with _call(server, llm, agent_config) as (call, first_request):
        url = server.audio_url(call["ChannelId"], call["Token"], rate_hz)
        async with AudioRecorder(url) as rec, Microphone(rec) as mic:
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=WAIT_S)
            yield Talk(server, llm, call["InstanceId"], rec, mic, first_request)
            assert rec.errors == []


@contextlib.asynccontextmanager
async def talk_over_webrtc(
    server: HeraldServer, llm: ScriptedLlm, agent_config: dict[str, Any] | None = None
) -> AsyncIterator[Talk]:
    """A call whose client is an aiortc peer with a microphone track (48 kHz clips)."""
    async with _call(server, llm, agent_config) as (call, first_request):
        mic = SpeechTrack()
        try:
            async with RtcRecorder(server.url, call["ChannelId"], call["Token"], microphone=mic) as rec:
                await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=WAIT_S)
                yield Talk(server, llm, call["InstanceId"], rec, mic, first_request)
                assert rec.errors == []
        finally:
            mic.stop()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}
