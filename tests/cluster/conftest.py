"""Fixtures of the cluster suite: Herald nodes sharing PostgreSQL and Redis, driven with the official SDK.

Every cluster has its own ``redis-server`` (killed and restarted by the Redis test), its own PostgreSQL
database and a unique name (its Redis key prefix). Without ``redis-server`` or PostgreSQL the suite is
skipped locally and fails in CI, where ``scripts/services`` provides both.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from herald.testing.cluster import Cluster, ServiceMissing
from herald.testing.server import HeraldServer

ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


def start_cluster(size: int, **options: Any) -> Cluster:
    """A started cluster; skipped (locally) or failed (in CI) if Redis or PostgreSQL is missing."""
    try:
        return Cluster(size, **options).start()
    except ServiceMissing as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"the cluster tests need redis-server and PostgreSQL in CI: {exc}") from exc
        pytest.skip(f"cluster tests need redis-server and PostgreSQL: {exc}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Three nodes for the tests that do not break anything (one cluster per module)."""
    running = start_cluster(3)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def clusters() -> Iterator[Callable[..., Cluster]]:
    """Start clusters of one's own (``clusters(2, config=...)``): for tests that kill or stop nodes."""
    started: list[Cluster] = []

    def start(size: int, **options: Any) -> Cluster:
        started.append(start_cluster(size, **options))
        return started[-1]

    yield start
    for each in started:
        each.close()


@dataclass(frozen=True)
class Call:
    """What GenerateAIAgentCall answered."""

    instance_id: str
    channel_id: str
    user_id: str
    token: str
    request_id: str


class Sdk:
    """The official SDK against any node of a cluster: the steps every test repeats, node first."""

    @staticmethod
    def generate_call(node: HeraldServer, **fields: Any) -> Call:
        body = (
            node.sdk_client()
            .generate_aiagent_call(
                models.GenerateAIAgentCallRequest(aiagent_id=fields.pop("aiagent_id", "default"), **fields)
            )
            .body
        )
        return Call(body.instance_id, body.channel_id, body.user_id, body.token, body.request_id)

    @staticmethod
    def generate_raw(node: HeraldServer, **params: Any) -> dict[str, Any]:
        """GenerateAIAgentCall through the SDK's generic call (for ``AgentConfig`` keys its models lack)."""
        query = {"AIAgentId": "default"}
        for name, value in params.items():
            query[name] = value if isinstance(value, str) else json.dumps(value)
        body: dict[str, Any] = node.call("GenerateAIAgentCall", query)
        return body

    @staticmethod
    def describe(node: HeraldServer, instance_id: str) -> Any:
        return (
            node.sdk_client()
            .describe_aiagent_instance(models.DescribeAIAgentInstanceRequest(instance_id=instance_id))
            .body.instance
        )

    @staticmethod
    def speak(node: HeraldServer, instance_id: str, text: str, **fields: Any) -> str:
        """SendAIAgentSpeech; returns its RequestId."""
        response = node.sdk_client().send_aiagent_speech(
            models.SendAIAgentSpeechRequest(instance_id=instance_id, text=text, **fields)
        )
        request_id: str = response.body.request_id
        return request_id

    async def aspeak(self, node: HeraldServer, instance_id: str, text: str, **fields: Any) -> str:
        return await asyncio.to_thread(self.speak, node, instance_id, text, **fields)

    async def adescribe(self, node: HeraldServer, instance_id: str) -> Any:
        return await asyncio.to_thread(self.describe, node, instance_id)

    @staticmethod
    def stop(node: HeraldServer, instance_id: str) -> Any:
        return node.sdk_client().stop_aiagent_instance(
            models.StopAIAgentInstanceRequest(instance_id=instance_id)
        )

    @staticmethod
    def dialogues(node: HeraldServer, session_id: str) -> list[Any]:
        """The session's dialogues, oldest first."""
        request = models.ListAIAgentDialoguesRequest(
            session_id=session_id,
            start_time=0,
            end_time=int(time.time() * 1000) + 60_000,
            order="ASC",
            page_size=100,
        )
        return list(node.sdk_client().list_aiagent_dialogues(request).body.dialogues or [])

    @staticmethod
    def extend(dialogue: Any) -> dict[str, Any]:
        """A dialogue's ``Extend``: ``{RequestId, Kind, Outcome, PlayedMs, Reason, Content}``."""
        parsed = json.loads(dialogue.extend)
        assert isinstance(parsed, dict), dialogue.extend
        return parsed

    @staticmethod
    def error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> AlibabaCloudException:
        """Call ``fn`` expecting an error answer (the SDK's client, server or throttling exception);
        check its body is the ICE envelope."""
        with pytest.raises(AlibabaCloudException) as caught:
            fn(*args, **kwargs)
        exc = caught.value
        assert isinstance(exc.data, dict), exc
        assert exc.data.keys() >= ENVELOPE_KEYS, f"not an ICE error envelope: {json.dumps(exc.data)}"
        assert exc.data["Code"] == exc.code
        return exc


@pytest.fixture(scope="session")
def sdk() -> Sdk:
    return Sdk()
