"""The soak run's load: one actor per slot, each with a call of its own, doing seeded random things.

A slot keeps one instance (created with ``GenerateAIAgentCall``; replaced when the actor stops or abandons
it) and one listener on it. On a *churn* slot the listener leaves and comes back at random. The actor
speaks only while it holds one of the run's few *voices* (so about ``max_voices`` calls synthesise at
once, whatever the number of slots), and gives its voice back once everything it said has an outcome.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from bench.rpc import RpcClient
from bench.soak_ledger import Instance, Ledger, Speech
from bench.soak_wire import Requests, Witness, open_witness, wait_closed
from bench.texts import long_text, medium_text, short_text
from herald.testing.server import HeraldServer

SPEECH_WEIGHTS: Final = {
    "short": 20,
    "medium-append": 14,
    "long": 4,
    "drop-if-busy": 14,
    "protected": 6,
    "audio": 10,
    "audio-bad": 6,
    "token-retry": 10,
}
OTHER_WEIGHTS: Final = {"update": 5, "describe": 5, "replace": 1.0, "abandon": 0.5}
QUIET_WEIGHT: Final = 60
"""An actor without a voice mostly waits for one (weight of ``wait`` against ``OTHER_WEIGHTS``)."""
APPENDING: Final = {"medium-append", "long"}
MAX_APPENDED: Final = 3
"""An actor appends only while fewer than this many of its speeches wait: queues stay drainable."""
SAMPLE_RATE_HZ: Final = 16_000
FINAL_TEXT: Final = "Thank you, that is all for now."


@dataclass(frozen=True)
class MediaUrls:
    good: tuple[str, ...]
    garbage: str
    truncated: str


class Load:
    """Every slot's actor, churning listener and the shared state they pace themselves with."""

    def __init__(
        self,
        server: HeraldServer,
        callback_url: str,
        media: MediaUrls,
        ledger: Ledger,
        requests: Requests,
        *,
        seed: int,
        slots: int,
        max_voices: int,
    ) -> None:
        self.server = server
        self.callback_url = callback_url
        self.media = media
        self.ledger = ledger
        self.requests = requests
        self.seed = seed
        self.max_voices = max_voices
        self.voices_in_use = 0
        self.histogram = [0] * 2001
        self.witnesses: list[Witness] = []
        self.problems: list[str] = []
        """Evidence of instances that did not end or answer as they should (check 2)."""
        self.used_tokens: list[tuple[str, str]] = []
        self.actions: Counter[str] = Counter()
        rng = random.Random(seed)
        self.coverage = [*SPEECH_WEIGHTS, *OTHER_WEIGHTS]
        rng.shuffle(self.coverage)
        self.slots = [Slot(self, i, churn=i % 3 == 2) for i in range(slots)]

    def live_instance(self, rng: random.Random) -> str | None:
        live = [s.instance.instance_id for s in self.slots if s.instance and s.instance.ended is None]
        return rng.choice(live) if live else None

    async def start(self) -> None:
        for slot in self.slots:
            await slot.new_instance()

    async def peak(self) -> None:
        """Every voice says a long text at once: synthesis reaches its working memory early, in warm-up."""
        for slot in self.slots[: self.max_voices]:
            if slot.take_voice():
                await slot.speak("long", {"Text": long_text(slot.rng.randrange(143))}, "interrupt")

    async def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        tasks = [slot.run(deadline) for slot in self.slots]
        tasks += [slot.churn(deadline) for slot in self.slots if slot.is_churn]
        await asyncio.gather(*tasks)

    async def drain(self, natural_s: float, bound_s: float) -> list[str]:
        """Let every queue play out for ``natural_s``, cut what still plays with a last interrupting speech,
        and wait ``bound_s`` more; the evidence for every speech still without an outcome."""
        await self._settle(natural_s)
        for slot in self.slots:
            if (
                slot.instance
                and slot.instance.ended is None
                and self.ledger.pending(slot.instance.instance_id)
            ):
                await slot.speak("final", {"Text": FINAL_TEXT, "EnableInterrupt": "true"}, "interrupt")
        await self._settle(bound_s)
        for slot in self.slots:
            slot.release_voice()
        return [f"no outcome for {rid}: {self.ledger.speeches[rid]}" for rid in self.ledger.all_pending()]

    async def _settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.ledger.all_pending() and time.monotonic() < deadline:
            for slot in self.slots:
                await slot.poll_dialogues(every_s=2.0)
            await asyncio.sleep(0.25)

    async def finish(self) -> None:
        """Check every live call is quiet (``1119`` answered with Listening), stop it, and check every
        instance ever made is ``Finished``."""
        for slot in self.slots:
            await slot.close_live()
        for instance in self.ledger.instances.values():
            status = await self.slots[instance.slot].status(instance.instance_id)
            if status != "Finished":
                self.problems.append(f"{instance.instance_id} ({instance.ended}) is {status}, not Finished")


class Slot:
    def __init__(self, load: Load, index: int, *, churn: bool) -> None:
        self.load = load
        self.index = index
        self.is_churn = churn
        self.rng = random.Random(f"{load.seed}-{index}")
        server = load.server
        self.api = RpcClient("127.0.0.1", server.port, server.access_key_id, server.access_key_secret)
        self.spare = RpcClient("127.0.0.1", server.port, server.access_key_id, server.access_key_secret)
        self.instance: Instance | None = None
        self.listener: Witness | None = None
        self.listener_lock = asyncio.Lock()
        self.holds_voice = False
        self._generation = 0
        self._tokens = 0
        self._last_poll_s = 0.0

    # -- the actor --

    async def run(self, deadline_s: float) -> None:
        while time.monotonic() < deadline_s:
            if self.holds_voice and self.instance and not self.load.ledger.pending(self.instance.instance_id):
                self.release_voice()
            await self.poll_dialogues(every_s=4.0)
            await self.act(self.choose())
            await asyncio.sleep(min(self.rng.uniform(0.4, 2.5), max(0.0, deadline_s - time.monotonic())))

    def choose(self) -> str:
        assert self.instance is not None
        waiting = len(self.load.ledger.pending(self.instance.instance_id))
        can_speak = self.holds_voice or self.take_voice()
        allowed = {**OTHER_WEIGHTS, **(SPEECH_WEIGHTS if can_speak else {"wait": QUIET_WEIGHT})}
        if waiting >= MAX_APPENDED:
            allowed = {k: w for k, w in allowed.items() if k not in APPENDING}
        for kind in self.load.coverage:  # every kind early in the run, whatever the dice say
            if kind in allowed:
                self.load.coverage.remove(kind)
                return kind
        kinds = list(allowed)
        return self.rng.choices(kinds, weights=[allowed[k] for k in kinds])[0]

    def take_voice(self) -> bool:
        if self.load.voices_in_use >= self.load.max_voices:
            return False
        self.load.voices_in_use += 1
        self.holds_voice = True
        return True

    def release_voice(self) -> None:
        if self.holds_voice:
            self.holds_voice = False
            self.load.voices_in_use -= 1

    async def act(self, kind: str) -> None:
        self.load.actions[kind] += 1
        rng = self.rng
        interrupt = rng.choice(("true", "false"))
        if kind == "wait":
            return
        if kind == "short":
            params = {"Text": short_text(rng.randrange(143)), "EnableInterrupt": interrupt}
            await self.speak(kind, params, "interrupt" if interrupt == "true" else "append")
        elif kind == "medium-append":
            await self.speak(
                kind, {"Text": medium_text(rng.randrange(143)), "EnableInterrupt": "false"}, "append"
            )
        elif kind == "long":
            policy = "interrupt" if interrupt == "true" else "append"
            await self.speak(
                kind, {"Text": long_text(rng.randrange(143)), "EnableInterrupt": interrupt}, policy
            )
        elif kind == "drop-if-busy":
            params = {"Text": medium_text(rng.randrange(143)), "Policy": "drop-if-busy"}
            await self.speak(kind, params, "drop-if-busy")
        elif kind == "protected":
            params = {
                "Text": medium_text(rng.randrange(143)),
                "Protected": "true",
                "EnableInterrupt": interrupt,
            }
            await self.speak(kind, params, "interrupt" if interrupt == "true" else "append")
        elif kind == "audio":
            params = {
                "Type": "AudioUrl",
                "Text": rng.choice(self.load.media.good),
                "EnableInterrupt": interrupt,
            }
            await self.speak(kind, params, "interrupt" if interrupt == "true" else "append")
        elif kind == "audio-bad":
            garbage = rng.random() < 0.5
            url = self.load.media.garbage if garbage else self.load.media.truncated
            await self.speak(
                "audio-garbage" if garbage else "audio-truncated", {"Type": "AudioUrl", "Text": url}
            )
        elif kind == "token-retry":
            text = short_text(rng.randrange(143)) if rng.random() < 0.5 else medium_text(rng.randrange(143))
            params = {"Text": text, "EnableInterrupt": interrupt}
            await self.speak(kind, params, "interrupt" if interrupt == "true" else "append", retry=True)
        elif kind == "update":
            config = rng.choice(
                (
                    {"Volume": rng.randint(60, 160)},
                    {"TtsConfig": {"SpeechRate": round(rng.uniform(0.8, 1.3), 2)}},
                )
            )
            await self._call("update", "UpdateAIAgentInstance", {"AgentConfig": json.dumps(config)})
        elif kind == "describe":
            await self._call("describe", "DescribeAIAgentInstance", {})
        elif kind in ("replace", "abandon"):
            await self.replace(abandon=kind == "abandon")

    async def speak(
        self, kind: str, params: dict[str, str], policy: str = "interrupt", *, retry: bool = False
    ) -> None:
        assert self.instance is not None
        params = {"InstanceId": self.instance.instance_id, **params}
        label = f"speak {kind}"
        if retry:
            self._tokens += 1
            params["ClientToken"] = token = f"soak-{self.load.seed}-{self.index}-{self._tokens}"
            answers: list[dict[str, Any] | None]
            if self.rng.random() < 0.5:  # both at once: the second waits for the first's answer
                answers = list(
                    await asyncio.gather(
                        self.load.requests.call(self.api, label, "SendAIAgentSpeech", params),
                        self.load.requests.call(self.spare, f"{label} (again)", "SendAIAgentSpeech", params),
                    )
                )
            else:
                first = await self.load.requests.call(self.api, label, "SendAIAgentSpeech", params)
                again = await self.load.requests.call(
                    self.spare, f"{label} (again)", "SendAIAgentSpeech", params
                )
                answers = [first, again]
            ids = {a["RequestId"] for a in answers if a is not None}
            if len(ids) > 1:
                self.load.ledger.idempotency_violations.append(
                    f"ClientToken {token}: RequestIds {sorted(ids)}"
                )
            self.load.used_tokens.append((self.instance.instance_id, token))
        else:
            answers = [await self.load.requests.call(self.api, label, "SendAIAgentSpeech", params)]
        for answer in answers:
            if answer is not None:
                self.load.ledger.accept(
                    Speech(
                        answer["RequestId"],
                        self.instance.instance_id,
                        kind,
                        policy,
                        params.get("Protected") == "true",
                        retry,
                    )
                )

    async def _call(self, kind: str, action: str, params: dict[str, str]) -> dict[str, Any] | None:
        assert self.instance is not None
        return await self.load.requests.call(
            self.api, kind, action, {"InstanceId": self.instance.instance_id, **params}
        )

    async def poll_dialogues(self, *, every_s: float) -> None:
        """A witness for what the listener may have missed: the dialogue log of a call with speech pending."""
        if time.monotonic() - self._last_poll_s < every_s:
            return
        self._last_poll_s = time.monotonic()
        sessions = [
            i.session_id
            for i in self.load.ledger.instances.values()
            if i.slot == self.index and self.load.ledger.pending(i.instance_id)
        ]
        for session in sessions:
            await self.dialogues(session, final=False)

    async def dialogues(self, session_id: str, *, final: bool) -> None:
        page = 1
        while True:
            params = {"SessionId": session_id, "Order": "ASC", "PageSize": "100", "PageNumber": str(page)}
            body = await self.load.requests.call(self.api, "dialogues", "ListAIAgentDialogues", params)
            records = (body or {}).get("Dialogues") or []
            self.load.ledger.on_dialogues(records, final=final)
            if len(records) < 100:
                return
            page += 1

    async def status(self, instance_id: str) -> str:
        body = await self.load.requests.call(
            self.api, "describe", "DescribeAIAgentInstance", {"InstanceId": instance_id}
        )
        return str(((body or {}).get("Instance") or {}).get("Status"))

    # -- instances and listeners --

    async def new_instance(self) -> None:
        self._generation += 1
        session_id = f"soak-{self.load.seed}-{self.index}-{self._generation}"
        config = {
            "UserOnlineTimeout": 600,
            "UserOfflineTimeout": 15,  # a churning listener is away 2.5 s at most
            "MaxIdleTime": 3600,
            "CallbackConfig": {
                "Url": self.load.callback_url,
                "Events": ["audio_record", "error", "agent_stop"],
            },
        }
        params = {"AIAgentId": "default", "SessionId": session_id, "AgentConfig": json.dumps(config)}
        body = await self.load.requests.call(self.api, "generate", "GenerateAIAgentCall", params)
        if body is None:
            raise RuntimeError(
                f"slot {self.index}: GenerateAIAgentCall failed: {self.load.requests.unexpected[-1:]}"
            )
        self.instance = Instance(
            body["InstanceId"], body["ChannelId"], body["Token"], session_id, self.index, self.is_churn
        )
        self.load.ledger.instances[self.instance.instance_id] = self.instance
        await self.connect()

    async def connect(self) -> None:
        assert self.instance is not None
        url = self.load.server.audio_url(self.instance.channel_id, self.instance.token, SAMPLE_RATE_HZ)
        try:
            self.listener = await open_witness(url, self.load.histogram, self.load.ledger.on_message)
        except (OSError, TimeoutError) as exc:
            self.listener = None
            self.load.problems.append(f"{self.instance.instance_id}: the listener could not join: {exc}")
            return
        self.load.witnesses.append(self.listener)

    async def churn(self, deadline_s: float) -> None:
        """The listener leaves (for 0.2 to 2.5 s) and comes back, every 2 to 8 s."""
        while time.monotonic() < deadline_s:
            await asyncio.sleep(min(self.rng.uniform(2.0, 8.0), max(0.0, deadline_s - time.monotonic())))
            async with self.listener_lock:
                if self.listener is not None:
                    self.listener.close()
                    self.listener = None
                await asyncio.sleep(self.rng.uniform(0.2, 2.5))
                if self.instance is not None and self.instance.ended is None:
                    await self.connect()

    async def replace(self, *, abandon: bool) -> None:
        """Stop the instance (or abandon it: its only listener leaves for good and ``UserOfflineTimeout``
        ends it), check it ended, and start a new one in its place."""
        instance = self.instance
        assert instance is not None
        async with self.listener_lock:
            if not abandon:
                await self._call("stop", "StopAIAgentInstance", {})
                instance.ended = "stopped"
                await self._drop_listener(instance, expect_close=True)
            else:
                await self._call(
                    "update", "UpdateAIAgentInstance", {"AgentConfig": '{"UserOfflineTimeout": 1}'}
                )
                instance.ended = "abandoned"
                instance.abandoned_at_s = time.monotonic()
                await self._drop_listener(instance, expect_close=False)
                await self._wait_finished(instance, timeout_s=15)
            self.release_voice()
            await self.new_instance()

    async def _drop_listener(self, instance: Instance, *, expect_close: bool) -> None:
        listener, self.listener = self.listener, None
        if listener is None:
            return
        if expect_close and not await wait_closed(listener, 10):
            self.load.problems.append(
                f"{instance.instance_id}: stopped, but its WebSocket was not closed in 10 s"
            )
        listener.close()

    async def _wait_finished(self, instance: Instance, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        status = ""
        while time.monotonic() < deadline:
            status = await self.status(instance.instance_id)
            if status == "Finished":
                return
            await asyncio.sleep(0.5)
        self.load.problems.append(f"{instance.instance_id}: abandoned, still {status} after {timeout_s} s")

    async def close_live(self) -> None:
        """At the end: the live call must be quiet (asked with ``1119``) and ``Executing``; then stop it."""
        instance = self.instance
        if instance is None or instance.ended is not None:
            return
        if self.listener is None or self.listener.closed:
            await self.connect()
        listener = self.listener
        if listener is not None:
            state = await listener.query_state(timeout_s=10)
            if state != 1:
                self.load.problems.append(f"{instance.instance_id}: at the end, state {state} (1: Listening)")
        status = await self.status(instance.instance_id)
        if status != "Executing":
            self.load.problems.append(f"{instance.instance_id}: {status} at the end, not Executing")
        await self._call("stop", "StopAIAgentInstance", {})
        instance.ended = "end"
        await self._drop_listener(instance, expect_close=True)

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        await self.api.close()
        await self.spare.close()
