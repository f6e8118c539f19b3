"""``SendAIAgentSpeech`` (ICE's four parameters and Herald's speak-now options), ``ListAIAgentDialogues``."""

from __future__ import annotations

import json
from typing import Any

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.api.context import ActionContext
from herald.api.params import Params
from herald.errors import InvalidParameter
from herald.media.fetch import check_url
from herald.speech.scheduler import ArrivalPolicy
from herald.store.records import DialogueRecord

MAX_SPEECH_CHARS = 1024
MAX_USER_TEXT_CHARS = 4096
_POLICIES = {p.value: p for p in ArrivalPolicy}


def _policy(p: Params) -> ArrivalPolicy:
    """``Policy`` when given (Herald's), else ICE's ``EnableInterrupt`` (default true)."""
    interrupt = p.flag("EnableInterrupt", True)
    raw = p.text("Policy")
    if raw is None:
        return ArrivalPolicy.INTERRUPT if interrupt else ArrivalPolicy.APPEND
    policy = _POLICIES.get(raw.strip().lower())
    if policy is None:
        raise InvalidParameter("Policy", f"must be one of {', '.join(_POLICIES)} (got {raw!r}).")
    if "EnableInterrupt" in p and interrupt != (policy is ArrivalPolicy.INTERRUPT):
        raise InvalidParameter(
            "Policy", f"{policy.value!r} contradicts EnableInterrupt={str(interrupt).lower()}."
        )
    return policy


def _content(ctx: ActionContext, p: Params) -> tuple[SpeechKind, str]:
    text = p.text("Text", required=True, allow_empty=True)
    assert text is not None
    if not text.strip():
        raise InvalidParameter("Text", "must contain something to say (it is empty or only white space).")
    if len(text) > MAX_SPEECH_CHARS:
        raise InvalidParameter("Text", f"must be at most {MAX_SPEECH_CHARS} characters (got {len(text)}).")
    kind_name = p.text("Type") or SpeechKind.TEXT.value
    try:
        kind = SpeechKind(kind_name)
    except ValueError:
        raise InvalidParameter("Type", f"must be Text or AudioUrl (got {kind_name!r}).") from None
    if kind is SpeechKind.AUDIO_URL:
        text = text.strip()
        problem = check_url(text, policy=ctx.fetch_policy)
        if problem is not None:
            raise InvalidParameter("Text", f"with Type=AudioUrl it must be an http(s) URL: {problem}")
    return kind, text


def _speech_request(ctx: ActionContext, p: Params) -> SpeechRequest:
    kind, content = _content(ctx, p)
    voice_id = p.text("VoiceId", max_len=64)
    if voice_id is not None and voice_id not in ctx.instances.voice_ids:
        raise InvalidParameter(
            "VoiceId", f"unknown voice {voice_id!r}; available: {', '.join(ctx.instances.voice_ids)}."
        )
    return SpeechRequest(
        utterance_id=ctx.request_id,
        content=content,
        kind=kind,
        policy=_policy(p),
        protected=p.flag("Protected", False),
        end_call_after=p.flag("EndCallAfterSpoken", False),
        voice_id=voice_id,
        speech_rate=p.number("SpeechRate", minimum=0.5, maximum=2.0),
        volume_percent=p.integer_or_none("Volume", minimum=0, maximum=400),
        add_to_history=p.flag("AddToHistory", False),
    )


async def send_text(ctx: ActionContext, p: Params) -> dict[str, Any]:
    """``SendAIAgentText``: the text is the user's turn; the agent's LLM answers it aloud."""
    instance_id = p.required_str("InstanceId", max_len=64)
    text = p.text("Text", required=True, allow_empty=True)
    assert text is not None
    if not text.strip():
        raise InvalidParameter("Text", "must contain something to say (it is empty or only white space).")
    if len(text) > MAX_USER_TEXT_CHARS:
        raise InvalidParameter("Text", f"must be at most {MAX_USER_TEXT_CHARS} characters (got {len(text)}).")

    async def send() -> dict[str, Any]:
        await ctx.instances.send_text(ctx.owner, instance_id, " ".join(text.split()))
        return {"RequestId": ctx.request_id}

    return await ctx.idempotency.run(ctx.owner, "SendAIAgentText", p.values, send)


async def send_speech(ctx: ActionContext, p: Params) -> dict[str, Any]:
    instance_id = p.required_str("InstanceId", max_len=64)
    request = _speech_request(ctx, p)

    async def speak() -> dict[str, Any]:
        await ctx.instances.speak(ctx.owner, instance_id, request)
        return {"RequestId": ctx.request_id}

    return await ctx.idempotency.run(ctx.owner, "SendAIAgentSpeech", p.values, speak)


def dialogue_fields(record: DialogueRecord) -> dict[str, Any]:
    return {
        "DialogueId": record.dialogue_id,
        "RoundId": record.round_id,
        "Producer": record.producer,
        "Text": record.text,
        "Time": record.time_ms,
        "Source": record.source,
        "Type": record.type,
        "Extend": json.dumps(record.extend, ensure_ascii=False),
    }


async def list_dialogues(ctx: ActionContext, p: Params) -> dict[str, Any]:
    session_id = p.required_str("SessionId", max_len=128)
    start_ms = p.integer("StartTime", 0, minimum=0, maximum=2**53)
    end_ms = p.integer("EndTime", 2**53, minimum=0, maximum=2**53)
    if end_ms < start_ms:
        raise InvalidParameter("EndTime", "must not be earlier than StartTime.")
    order = (p.text("Order") or "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameter("Order", f"must be ASC or DESC (got {order!r}).")
    round_limit = p.integer_or_none("RoundLimit", minimum=1, maximum=1000)
    records = await ctx.instances.dialogues.list(
        ctx.owner,
        session_id,
        start_ms=start_ms,
        end_ms=end_ms,
        order="ASC" if order == "ASC" else "DESC",
        page_number=p.integer("PageNumber", 1, minimum=1, maximum=1_000_000),
        page_size=p.integer("PageSize", 20, minimum=1, maximum=100),
        round_limit=round_limit,
    )
    return {"Dialogues": [dialogue_fields(r) for r in records]}
