"""The soak run's conversation load: a few *talkers*, each a call whose client speaks to the agent.

A talker's call is made with ``GenerateAIAgentCall`` (its ``LlmConfig.LlmSystemPrompt`` names the call, so
that every LLM request can be traced to it) and joined by a WebSocket client whose ``Microphone`` sends
20 ms frames all the time, silence between what it says. On a seeded random schedule it says one of a few
Piper clips PocketSphinx hears well: as a turn once the agent listens, over the agent's answer (a
barge-in), twice in quick succession (the second supersedes the first), or it leaves in the middle of a
clip and a new call replaces the old one. The server's LLM is a ``ScriptedLlm`` answering with replies
of every length, some after a pause (a slow model), some long enough to be barged in on.

The client and what it keeps are in ``soak_talk_client.py``; the checks in ``soak_talk_checks.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any, Final

from bench.rpc import RpcClient
from bench.soak_ledger import Ledger
from bench.soak_talk_client import (
    Said,
    TalkCall,
    TalkClient,
    answer_id,
    extend_of,
    sleep_until,
)
from bench.soak_wire import Requests
from bench.texts import medium_text, opener, text_of
from herald.media.resample import resample_once
from herald.testing.audio_client import STATE_LISTENING, Pcm
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.server import HeraldServer

QUESTIONS: Final = ("What time is it?", "Tell me about the weather.", "Good morning.", "Thank you very much.")
"""What PocketSphinx hears right in (nearly) every take of Piper's voice."""
TALK_WEIGHTS: Final = {"turn": 5.0, "barge": 3.0, "quick": 1.5, "leave": 0.8}
ASR_WORKERS: Final = 2
"""``[asr] workers`` of the soak's server (check 3b counts them)."""
MAX_TURNS_PER_CALL: Final = 80
"""A call this old is left: its history (``LlmHistoryLimit`` 100) still holds every turn (check 5)."""
HISTORY_LIMIT: Final = 100
SAMPLE_RATE_HZ: Final = 16_000
REPLIES: Final = 3000


def prepare_clips() -> dict[str, Pcm]:
    """Piper saying each of ``QUESTIONS`` at 16 kHz (blocking, a few seconds: call it off the loop)."""
    from herald.speech.piper_engine import PiperEngine  # loads onnxruntime: only when talkers are on
    from herald.speech.tts import VoiceSettings

    engine = PiperEngine.load()
    voice = VoiceSettings(engine.voice_ids[0])
    return {text: resample_once(engine.synthesize(text, voice), 48_000, SAMPLE_RATE_HZ) for text in QUESTIONS}


def script_replies(llm: ScriptedLlm, seed: int) -> None:
    """Seeded replies: short (one clause, at once), medium (~10 s) and long (~25 s, streamed in pieces);
    one in five after a pause of 0.3 to 1.5 s, so that a quick second utterance finds the agent thinking."""
    rng = random.Random(f"{seed}-llm")
    replies: list[Reply] = []
    for number in range(REPLIES):
        kind = rng.random()
        if kind < 0.45:
            text = opener(number % 143)
            chunk, between_s = len(text), 0.0
        else:
            text = medium_text(number) if kind < 0.75 else text_of(number, 420)
            chunk, between_s = 24, 0.03
        delay_s = rng.uniform(0.3, 1.5) if rng.random() < 0.2 else 0.0
        replies.append(Reply(text, chunk_chars=chunk, delay_between_s=between_s, delay_first_s=delay_s))
    llm.script(*replies)
    llm.default = Reply(medium_text(REPLIES), chunk_chars=24, delay_between_s=0.03)


class Talkers:
    """Every talker, the calls they made, and what the run asked of the LLM."""

    def __init__(
        self,
        server: HeraldServer,
        callback_url: str,
        ledger: Ledger,
        requests: Requests,
        clips: dict[str, Pcm],
        *,
        seed: int,
        count: int,
    ) -> None:
        self.server = server
        self.callback_url = callback_url
        self.ledger = ledger
        self.requests = requests
        self.clips = clips
        self.seed = seed
        self.calls: list[TalkCall] = []
        self.problems: list[str] = []
        """Evidence of talker calls that did not end or answer as they should (check 5b)."""
        self.actions: Counter[str] = Counter()
        rng = random.Random(f"{seed}-talkers")
        self.coverage = list(TALK_WEIGHTS)
        rng.shuffle(self.coverage)
        self.talkers = [Talker(self, i) for i in range(count)]

    async def start(self) -> None:
        for talker in self.talkers:
            await talker.new_call()

    async def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(t.run(deadline) for t in self.talkers))

    async def drain(self, bound_s: float) -> None:
        """Until every agent has said its answer and listens (``bound_s`` at most: then it is stuck)."""
        for talker in self.talkers:
            client = talker.client
            if client is not None and not await client.wait_listening(bound_s):
                self.problems.append(
                    f"{client.call.instance_id}: still in state {client.state} {bound_s:g} s after the load"
                )

    async def final_round(self) -> None:
        """One clean turn per recogniser worker, one after another (at least one per talker): the recogniser
        replaces a dead or abandoned worker when its slot is next needed, and turns one at a time pass
        through every slot. Then every answer plays out."""
        for step in range(max(ASR_WORKERS, len(self.talkers)) if self.talkers else 0):
            talker = self.talkers[step % len(self.talkers)]
            client = talker.client
            if client is None:
                continue
            await asyncio.sleep(talker.rng.uniform(0.5, 1.0))
            text = talker.rng.choice(QUESTIONS)
            said = await client.say(self.clips[text], text, "final")
            if not await client.wait_heard(said.queued_s, 20):
                self.problems.append(
                    f"{client.call.instance_id}: the last turn ({text!r}) was not heard in 20 s"
                )
        await self.drain(45.0)

    async def finish(self) -> None:
        """Each live call must be quiet (``1119``: Listening) and ``Executing``; it is stopped, its socket
        closed by the server within 10 s; every talker call ever made must be ``Finished``."""
        for talker in self.talkers:
            await talker.close_live()
        for call in self.calls:
            status = await self.talkers[call.talker].status(call.instance_id)
            if status != "Finished":
                self.problems.append(f"{call.instance_id} ({call.ended}) is {status}, not Finished")

    async def read_dialogues(self) -> None:
        for call in self.calls:
            call.dialogues = await self.talkers[call.talker].dialogues(call.session_id)

    def missing_callbacks(self) -> bool:
        """Whether an answer that played, or a call's ``agent_stop``, has no callback yet."""
        for call in self.calls:
            if self.ledger.answer_stops.get(call.instance_id, 0) < 1:
                return True
            for line in call.dialogues:
                rid = answer_id(line)
                played = extend_of(line).get("Outcome") in ("finished", "interrupted")
                if rid and played and rid not in self.ledger.answer_callbacks:
                    return True
        return False

    async def close(self) -> None:
        for talker in self.talkers:
            if talker.client is not None:
                await talker.client.close()
                talker.client = None
            await talker.api.close()


class Talker:
    def __init__(self, group: Talkers, index: int) -> None:
        self.group = group
        self.index = index
        self.rng = random.Random(f"{group.seed}-talker-{index}")
        server = group.server
        self.api = RpcClient("127.0.0.1", server.port, server.access_key_id, server.access_key_secret)
        self.client: TalkClient | None = None
        self._generation = 0
        self._deadline_s = 0.0

    # -- the actor --

    async def run(self, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        while time.monotonic() < deadline_s:
            await sleep_until(min(deadline_s, time.monotonic() + self.rng.uniform(0.4, 2.0)))
            if time.monotonic() >= deadline_s:
                return
            client = self.client
            if client is None or client.closed:
                await self._replace()
                continue
            kind = self.choose(client)
            self.group.actions[kind] += 1
            if kind == "turn":
                if await self._listening(client):
                    await self._say(client, "turn")
            elif kind == "barge":
                await self._barge(client)
            elif kind == "quick":
                if await self._listening(client):
                    await self._say(client, "turn")
                    await asyncio.sleep(self.rng.uniform(0.5, 1.1))
                    await self._say(client, "quick")
            else:
                await self._leave(client)

    async def _listening(self, client: TalkClient) -> bool:
        """Wait (at most until the phase's end) for the agent to listen."""
        return await client.wait_listening(min(45.0, max(0.0, self._deadline_s - time.monotonic())))

    def choose(self, client: TalkClient) -> str:
        if len(client.call.turns) >= MAX_TURNS_PER_CALL:
            return "leave"
        if self.group.coverage:  # every kind early in the run, whatever the dice say
            return self.group.coverage.pop()
        kinds = list(TALK_WEIGHTS)
        return self.rng.choices(kinds, weights=[TALK_WEIGHTS[k] for k in kinds])[0]

    async def _say(self, client: TalkClient, how: str) -> Said:
        text = self.rng.choice(QUESTIONS)
        return await client.say(self.group.clips[text], text, how)

    async def _barge(self, client: TalkClient) -> None:
        """Over an answer: the one playing, or the answer to a turn said for it."""
        if not client.answering():
            if not await self._listening(client):
                return
            said = await self._say(client, "turn")
            if said.spoken is None or not await client.wait_audible(said.spoken.last_frame_s, 15):
                return
        await asyncio.sleep(self.rng.uniform(0.3, 2.5))
        await self._say(client, "barge")

    async def _leave(self, client: TalkClient) -> None:
        """Leave in the middle of a clip (its utterance begun, not ended); a new call replaces this one."""
        text = self.rng.choice(QUESTIONS)
        client.start_saying(self.group.clips[text], text, "leave")
        await asyncio.sleep(self.rng.uniform(0.3, 0.8))
        await client.leave()
        await asyncio.sleep(self.rng.uniform(0.0, 1.5))
        await self._replace()

    async def _replace(self) -> None:
        """Stop the current call (if any), check that it ends, and make a new one."""
        client, self.client = self.client, None
        if client is not None:
            call = client.call
            await client.close()
            await self.group.requests.call(
                self.api, "stop (talker)", "StopAIAgentInstance", {"InstanceId": call.instance_id}
            )
            call.ended = "left"
            deadline = time.monotonic() + 15
            status = ""
            while time.monotonic() < deadline:
                status = await self.status(call.instance_id)
                if status == "Finished":
                    break
                await asyncio.sleep(0.5)
            else:
                self.group.problems.append(f"{call.instance_id}: stopped, still {status} after 15 s")
        await self.new_call()

    # -- calls --

    async def new_call(self) -> None:
        self._generation += 1
        group = self.group
        session_id = f"soak-{group.seed}-talker-{self.index}-{self._generation}"
        tag = f"You are the soak run's agent on call {session_id}."
        config = {
            "UserOnlineTimeout": 600,
            "UserOfflineTimeout": 15,
            "MaxIdleTime": 3600,
            "LlmConfig": {"LlmSystemPrompt": tag, "LlmHistoryLimit": HISTORY_LIMIT},
            "CallbackConfig": {"Url": group.callback_url, "Events": ["audio_record", "error", "agent_stop"]},
        }
        params = {"AIAgentId": "default", "SessionId": session_id, "AgentConfig": json.dumps(config)}
        body = await group.requests.call(self.api, "generate (talker)", "GenerateAIAgentCall", params)
        if body is None:
            raise RuntimeError(
                f"talker {self.index}: GenerateAIAgentCall failed: {group.requests.unexpected[-1:]}"
            )
        call = TalkCall(self.index, session_id, body["InstanceId"], tag)
        group.ledger.conversation_instances.add(call.instance_id)
        group.calls.append(call)
        client = TalkClient(call, group.server.audio_url(body["ChannelId"], body["Token"], SAMPLE_RATE_HZ))
        try:
            await client.open()
        except (OSError, TimeoutError) as exc:
            call.problems.append(f"{call.instance_id}: the client could not join: {exc}")
            return
        self.client = client
        if not await client.wait(lambda: client.state == STATE_LISTENING, 10):
            call.problems.append(f"{call.instance_id}: no 1001 Listening within 10 s of joining")

    async def close_live(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        call = client.call
        state = await client.query_state(timeout_s=10)
        if state != STATE_LISTENING:
            call.problems.append(f"{call.instance_id}: at the end, state {state} (1: Listening)")
        status = await self.status(call.instance_id)
        if status != "Executing":
            call.problems.append(f"{call.instance_id}: {status} at the end, not Executing")
        await self.group.requests.call(
            self.api, "stop (talker)", "StopAIAgentInstance", {"InstanceId": call.instance_id}
        )
        call.ended = "end"
        if not await client.wait_closed_by_server(10):
            call.problems.append(f"{call.instance_id}: stopped, but its WebSocket was not closed in 10 s")
        await client.close()

    async def status(self, instance_id: str) -> str:
        body = await self.group.requests.call(
            self.api, "describe (talker)", "DescribeAIAgentInstance", {"InstanceId": instance_id}
        )
        return str(((body or {}).get("Instance") or {}).get("Status"))

    async def dialogues(self, session_id: str) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"SessionId": session_id, "Order": "ASC", "PageSize": "100", "PageNumber": str(page)}
            body = await self.group.requests.call(
                self.api, "dialogues (talker)", "ListAIAgentDialogues", params
            )
            records = (body or {}).get("Dialogues") or []
            lines += records
            if len(records) < 100:
                return lines
            page += 1
