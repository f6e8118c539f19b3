"""The instance actions: start, generate a call, describe, list, update, stop."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from herald.agents.manager import NewInstance
from herald.agents.settings import without_secrets
from herald.api.context import ActionContext
from herald.api.params import Params
from herald.errors import InvalidParameter
from herald.store.records import InstanceRecord

MAX_EXPIRE_S = 604_800
RUNTIME_CONFIG_NESTS = ("VoiceChat", "VisionChat", "AvatarChat3D")


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
        "AgentConfig": without_secrets(record.agent_config),
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
    new = replace(_common_new(ctx, p), channel_id=channel_id, agent_user_id=agent_user_id)

    async def start() -> dict[str, Any]:
        record = await ctx.instances.start(new)
        return {"RequestId": ctx.request_id, "InstanceId": record.instance_id}

    return await ctx.idempotency.run(ctx.owner, "StartAIAgentInstance", p.values, start)


async def generate_call(ctx: ActionContext, p: Params) -> dict[str, Any]:
    new = replace(_common_new(ctx, p), user_id=p.text("UserId", max_len=64))
    expire_s = p.integer("Expire", 3600, minimum=1, maximum=MAX_EXPIRE_S)

    async def generate() -> dict[str, Any]:
        call = await ctx.instances.generate_call(new, expire_s=expire_s)
        return {
            "RequestId": ctx.request_id,
            "InstanceId": call.record.instance_id,
            "ChannelId": call.record.channel_id,
            "UserId": call.user_id,
            "AIAgentUserId": call.record.agent_user_id,
            "AvatarUserId": "",
            "Token": call.token,
        }

    return await ctx.idempotency.run(ctx.owner, "GenerateAIAgentCall", p.values, generate)


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
    records = await ctx.instances.list_instances(
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
