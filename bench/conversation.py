"""Figure 8, conversation: from the end of what the user says to the first audible frame of the answer.

One call on a server whose ``[llm]`` is a ``ScriptedLlm`` in this process that answers at once (the whole
reply in one chunk, no delay). A 16 kHz client sends its microphone without a break (silence between
turns) and says a short question, Piper's voice, one of a few; the server hears it (Silero VAD, which
waits ``AsrMaxSilence``, 400 ms by default, of silence), transcribes it (PocketSphinx), asks the LLM and
speaks the reply: a sentence of one clause, different every turn (the server caches phrases, and a reply
said twice would measure the cache). Each turn waits until the answer was said and the agent listens.

Times are from the moment the last frame of the user's clip with speech energy (RMS above 200) was sent,
to: the final user subtitle (``1003``: VAD end + the last part of recognition, which streams while the user
speaks), the LLM request's arrival, the agent's first subtitle (``1002``: LLM + TTS of the first clause)
and the first audible frame of the answer. Beside them, in this process, Silero VAD on the same clips: how
long after the voice's end it declares the utterance over (``AsrMaxSilence`` plus the model's own lag),
so the rest of the ``1003`` time is recognition's last part and transport. Arrival times include up to
20 ms of pacing: frames leave every 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import asdict, dataclass

import numpy as np

from bench.harness import Options, rpc_for, running_server
from bench.rpc import HttpError
from bench.stats import Figure, Row
from bench.texts import opener
from herald.agents.settings import AgentConfigModel
from herald.conversation.settings import conversation_settings
from herald.listening.vad import SpeechEnded, VoiceActivity
from herald.listening.vad_model import SileroModel
from herald.media.frames import FRAME_SAMPLES
from herald.media.resample import resample_once
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings
from herald.testing.audio_client import SILENCE_RMS, AudioRecorder, DataMessage, Microphone, Pcm
from herald.testing.llm_server import Reply, ScriptedLlm

SAMPLE_RATE_HZ = 16_000
MSG_STATE = 1001
MSG_SUBTITLE = 1002
MSG_USER_SUBTITLE = 1003
MSG_OUTCOME = 1900
STATE_LISTENING = 1
TURNS = 8
QUICK_TURNS = 3
QUESTIONS = ("What time is it?", "Tell me about the weather.", "Good morning.", "Thank you very much.")
SEED = 200  # opener(200 + i): replies not said by the other figures (each has its own server anyway)


@dataclass(frozen=True)
class Turn:
    """One turn, in ms after the user's voice ended."""

    heard_ms: float
    """The user subtitle (``1003``) arrived."""
    asked_ms: float
    """The LLM request arrived at the scripted LLM."""
    subtitle_ms: float
    """The agent's first subtitle (``1002``) arrived."""
    audible_ms: float
    """The first audible frame of the answer arrived."""
    recognised: str


def _clips() -> dict[str, Pcm]:
    engine = PiperEngine.load()
    engine.warm_up()
    voice = VoiceSettings(engine.voice_ids[0])
    return {text: resample_once(engine.synthesize(text, voice), 48_000, SAMPLE_RATE_HZ) for text in QUESTIONS}


def _vad_wait_ms(clips: dict[str, Pcm]) -> list[float]:
    """For each clip, in audio time: from the end of its last 20 ms of speech energy (as the client counts
    it) to the ``SpeechEnded`` of Silero VAD with the server's default settings, fed as the server feeds
    it (48 kHz frames, silence after the clip)."""
    model = SileroModel.load()
    settings = conversation_settings(AgentConfigModel.model_validate({})).vad
    waits: list[float] = []
    for pcm in clips.values():
        step = SAMPLE_RATE_HZ // 50
        loud = [i for i in range(0, len(pcm), step) if _rms(pcm[i : i + step]) > SILENCE_RMS]
        voice_end_ms = (loud[-1] // step + 1) * 20
        padded = np.concatenate([pcm, np.zeros(2 * SAMPLE_RATE_HZ, np.int16)])
        audio = resample_once(padded, SAMPLE_RATE_HZ, 48_000)
        vad = VoiceActivity(model, settings)
        for index in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            if any(isinstance(e, SpeechEnded) for e in vad.push(audio[index : index + FRAME_SAMPLES])):
                waits.append((index // FRAME_SAMPLES + 1) * 20 - voice_end_ms)
                break
    return waits


def _rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def _final(message: DataMessage) -> bool:
    """The user subtitle that ends a sentence (partial ones come while the user speaks)."""
    return message.data.get("end") is True


async def _turn(rec: AudioRecorder, mic: Microphone, llm: ScriptedLlm, pcm: Pcm, answer: str) -> Turn:
    llm.script(Reply(answer, chunk_chars=len(answer), delay_between_s=0.0))
    mark = rec.mark()
    asked_before = len(llm.requests)
    spoken = await mic.say(pcm)
    ended_s = spoken.voice_ended_s
    heard = await rec.wait_for_message(MSG_USER_SUBTITLE, _final, after=mark, timeout_s=20)
    subtitle = await rec.wait_for_message(MSG_SUBTITLE, after=heard.index, timeout_s=20)
    await rec.wait_until(
        lambda: bool(rec.nonsilent_frames(after=heard.index)), timeout_s=20, what="the answer's audio"
    )
    audible = rec.nonsilent_frames(after=heard.index)[0]
    outcome = await rec.wait_for_message(MSG_OUTCOME, after=heard.index, timeout_s=30)
    await rec.wait_for_message(
        MSG_STATE, lambda m: m.data.get("state") == STATE_LISTENING, after=outcome.index, timeout_s=10
    )
    requests = llm.requests
    if len(requests) != asked_before + 1:
        raise RuntimeError(f"expected one LLM request for the turn, got {len(requests) - asked_before}")
    return Turn(
        heard_ms=(heard.received_s - ended_s) * 1000,
        asked_ms=(requests[-1].received_s - ended_s) * 1000,
        subtitle_ms=(subtitle.received_s - ended_s) * 1000,
        audible_ms=(audible.received_s - ended_s) * 1000,
        recognised=str(heard.data.get("text", "")),
    )


async def run(options: Options) -> Figure:
    turns = QUICK_TURNS if options.quick else TURNS
    figure = Figure(
        "conversation",
        "Conversation: end of the user's speech to the first audible frame of the agent's answer",
        f"{turns} spoken turns (after 1 warm-up) on one call, 16 kHz client, PocketSphinx ASR, default "
        f"AsrMaxSilence (400 ms); a scripted LLM answers at once, a new sentence in one chunk; times from "
        f"the last frame of the user's clip with speech energy; arrivals include up to 20 ms of pacing.",
    )
    clips = await asyncio.to_thread(_clips)
    vad_ms = await asyncio.to_thread(_vad_wait_ms, clips)
    measured: list[Turn] = []
    warm_up: Turn | None = None
    with ScriptedLlm(default=Reply("Sorry?")) as llm:
        config = f'[llm]\nurl = "{llm.base_url}"\nmodel = "bench"\n'
        with running_server(config=config) as server:
            async with rpc_for(server) as api:
                call = await api.generate_call()
                try:
                    url = server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)
                    async with AudioRecorder(url) as rec, Microphone(rec) as mic:
                        await rec.wait_for_message(
                            MSG_STATE, lambda m: m.data.get("state") == STATE_LISTENING, timeout_s=10
                        )
                        for number in range(turns + 1):
                            await asyncio.sleep(0.5)  # a pause between turns, as people make
                            question = clips[QUESTIONS[number % len(QUESTIONS)]]
                            turn = await _turn(rec, mic, llm, question, opener(SEED + number))
                            if number:
                                measured.append(turn)
                            else:  # the first turn warms the server's recogniser and models up
                                warm_up = turn
                finally:
                    with contextlib.suppress(HttpError):
                        await api.stop(call.instance_id)
    audible = [t.audible_ms for t in measured]
    figure.add(Row("end of speech → first audible answer", "ms", audible))
    figure.add(Row("end of speech → user subtitle 1003 (VAD + ASR)", "ms", [t.heard_ms for t in measured]))
    figure.add(Row("  of which the VAD waiting out AsrMaxSilence (audio time)", "ms", vad_ms))
    figure.add(
        Row(
            "  the rest: recognition's last part, transport",
            "ms",
            [t.heard_ms - statistics.median(vad_ms) for t in measured],
        )
    )
    figure.add(Row("1003 → LLM request arrives", "ms", [t.asked_ms - t.heard_ms for t in measured]))
    figure.add(
        Row("LLM request → first agent subtitle 1002", "ms", [t.subtitle_ms - t.asked_ms for t in measured])
    )
    figure.add(
        Row("first 1002 → first audible frame", "ms", [t.audible_ms - t.subtitle_ms for t in measured])
    )
    if warm_up is not None:
        figure.add(
            Row(
                "first turn after start: → first audible answer",
                "ms",
                value=warm_up.audible_ms,
                note="not above",
            )
        )
    figure.details = {
        "warm_up_turn": None if warm_up is None else asdict(warm_up),
        "turns": [
            {
                "heard_ms": round(t.heard_ms, 1),
                "asked_ms": round(t.asked_ms, 1),
                "subtitle_ms": round(t.subtitle_ms, 1),
                "audible_ms": round(t.audible_ms, 1),
                "recognised": t.recognised,
            }
            for t in measured
        ],
        "vad_wait_ms": vad_ms,
    }
    return figure
