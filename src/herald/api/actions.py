"""The AI-agent actions: wire parameters in, wire fields out. The work itself is the instance manager's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from herald.agents.manager import InstanceManager, NewInstance
from herald.api.params import Params
from herald.errors import InvalidParameter
from herald.speech.scheduler import ArrivalPolicy
from herald.store.records import InstanceRecord

API_VERSION = "2020-11-09"
MAX_SPEECH_CHARS = 1024
MAX_EXPIRE_S = 604_800
RUNTIME_CONFIG_NESTS = ("VoiceChat", "VisionChat", "AvatarChat3D")


@dataclass(frozen=True, slots=True)
class ActionContext:
    instances: InstanceManager
    owner: str
    """The AccessKeyId that signed the request."""
    request_id: str


Action = Callable[[ActionContext, Params], Awaitable[dict[str, Any]]]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_fields(record: InstanceRecord) -> dict[str, Any]:
    """An instance as Describe and List show it."""
    call_info: dict[str, Any] = {
        "CallStartTime": _iso(record.call_start_at),
        "CallEndTime": _iso(record.call_end_at),
    }
    if record.call_start_at is not None and record.call_end_at is not None:
        call_info["CallDuration"] = int((record.call_end_at - record.call_start_at).total_seconds())
    if record.hangup_role is not None:
        call_info["HangupRole"] = record.hangup_role
    fields: dict[str, Any] = {
        "InstanceId": record.instance_id,
        "AIAgentId": record.agent_id,
        "AgentConfig": record.agent_config,
        "CallInfo": {k: v for k, v in call_info.items() if v is not None},
        "CallLogUrl": "",
        "GmtCreate": _iso(record.created_at),
        "GmtModified": _iso(record.modified_at),
        "RuntimeConfig": record.runtime_config,
        "SessionId": record.session_id,
        "Status": record.status,
        "TemplateConfig": record.template_config,
        "UserData": record.user_data,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _common_new(ctx: ActionContext, p: Params) -> NewInstance:
    return NewInstance(
        owner=ctx.owner,
        agent_id=p.required_str("AIAgentId", max_len=128),
        agent_config=p.json_object("AgentConfig"),
        template_config=p.json_object("TemplateConfig"),
        chat_sync_config=p.json_object("ChatSyncConfig"),
        session_id=p.text("SessionId", max_len=128),
        user_data=p.text("UserData", max_len=8192, allow_empty=True),
    )


def _runtime_channel(p: Params) -> tuple[str, str | None]:
    runtime = p.json_object("RuntimeConfig")
    if runtime is None:
        p.required_str("RuntimeConfig")
        raise InvalidParameter("RuntimeConfig", "must be a JSON object.")
    nested = next((runtime[k] for k in RUNTIME_CONFIG_NESTS if isinstance(runtime.get(k), dict)), None)
    source = nested if nested is not None and "ChannelId" not in runtime else runtime
    channel_id = source.get("ChannelId")
    if not isinstance(channel_id, str) or not channel_id.strip():
        raise InvalidParameter("RuntimeConfig.ChannelId", "a channel id (non-empty string) is required.")
    if len(channel_id) > 128:
        raise InvalidParameter("RuntimeConfig.ChannelId", "must be at most 128 characters.")
    agent_user_id = source.get("AgentUserId")
    if agent_user_id is not None and (not isinstance(agent_user_id, str) or len(agent_user_id) > 64):
        raise InvalidParameter("RuntimeConfig.AgentUserId", "must be a string of at most 64 characters.")
    return channel_id, agent_user_id or None


async def start_instance(ctx: ActionContext, p: Params) -> dict[str, Any]:
    channel_id, agent_user_id = _runtime_channel(p)
    new = _common_new(ctx, p)
    record = await ctx.instances.start(replace(new, channel_id=channel_id, agent_user_id=agent_user_id))
    return {"InstanceId": record.instance_id}


async def generate_call(ctx: ActionContext, p: Params) -> dict[str, Any]:
    new = replace(_common_new(ctx, p), user_id=p.text("UserId", max_len=64))
    expire_s = p.integer("Expire", 3600, minimum=1, maximum=MAX_EXPIRE_S)
    call = await ctx.instances.generate_call(new, expire_s=expire_s)
    return {
        "InstanceId": call.record.instance_id,
        "ChannelId": call.record.channel_id,
        "UserId": call.user_id,
        "AIAgentUserId": call.record.agent_user_id,
        "AvatarUserId": "",
        "Token": call.token,
    }


async def stop_instance(ctx: ActionContext, p: Params) -> dict[str, Any]:
    await ctx.instances.stop(ctx.owner, p.required_str("InstanceId", max_len=64))
    return {}


async def update_instance(ctx: ActionContext, p: Params) -> dict[str, Any]:
    await ctx.instances.update(
        ctx.owner,
        p.required_str("InstanceId", max_len=64),
        agent_config=p.json_object("AgentConfig"),
        template_config=p.json_object("TemplateConfig"),
        user_data=p.text("UserData", max_len=8192, allow_empty=True),
    )
    return {}


async def describe_instance(ctx: ActionContext, p: Params) -> dict[str, Any]:
    record = await ctx.instances.get(ctx.owner, p.required_str("InstanceId", max_len=64))
    return {"Instance": instance_fields(record)}


async def list_instances(ctx: ActionContext, p: Params) -> dict[str, Any]:
    start, end = p.time("StartTime"), p.time("EndTime")
    if start is not None and end is not None and end < start:
        raise InvalidParameter("EndTime", "must not be earlier than StartTime.")
    page_number = p.integer("PageNumber", 1, minimum=1, maximum=1_000_000)
    page_size = p.integer("PageSize", 10, minimum=1, maximum=100)
    records = await ctx.instances.list(
        ctx.owner,
        p.required_str("AIAgentId", max_len=128),
        start=start,
        end=end,
        page_number=page_number,
        page_size=page_size,
    )
    return {
        "Instances": [instance_fields(r) for r in records],
        "PageNumber": page_number,
        "PageSize": page_size,
    }


async def send_speech(ctx: ActionContext, p: Params) -> dict[str, Any]:
    instance_id = p.required_str("InstanceId", max_len=64)
    text = p.text("Text", required=True, allow_empty=True)
    assert text is not None
    if not text.strip():
        raise InvalidParameter("Text", "must contain something to say (it is empty or only white space).")
    if len(text) > MAX_SPEECH_CHARS:
        raise InvalidParameter("Text", f"must be at most {MAX_SPEECH_CHARS} characters (got {len(text)}).")
    kind = p.text("Type") or "Text"
    if kind == "AudioUrl":
        raise InvalidParameter("Type", "AudioUrl is not supported by this Herald version yet; use Type=Text.")
    if kind != "Text":
        raise InvalidParameter("Type", f"must be Text or AudioUrl (got {kind!r}).")
    policy = ArrivalPolicy.INTERRUPT if p.flag("EnableInterrupt", True) else ArrivalPolicy.APPEND
    await ctx.instances.speak(ctx.owner, instance_id, utterance_id=ctx.request_id, text=text, policy=policy)
    return {}


ACTIONS: dict[str, Action] = {
    "StartAIAgentInstance": start_instance,
    "StopAIAgentInstance": stop_instance,
    "UpdateAIAgentInstance": update_instance,
    "DescribeAIAgentInstance": describe_instance,
    "ListAIAgentInstance": list_instances,
    "GenerateAIAgentCall": generate_call,
    "SendAIAgentSpeech": send_speech,
}
