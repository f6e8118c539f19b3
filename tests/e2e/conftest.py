"""Shared fixtures of the end-to-end suite: a real server per module and an SDK-level helper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing.server import HeraldServer

ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


@dataclass(frozen=True)
class Call:
    """What GenerateAIAgentCall answered."""

    instance_id: str
    channel_id: str
    user_id: str
    agent_user_id: str
    token: str
    request_id: str


class Api:
    """The official SDK against one server, with the few steps every test repeats."""

    def __init__(self, server: HeraldServer) -> None:
        self.server = server
        self.client = server.sdk_client()

    def generate_call(self, aiagent_id: str = "default", **fields: Any) -> Call:
        body = self.client.generate_aiagent_call(
            models.GenerateAIAgentCallRequest(aiagent_id=aiagent_id, **fields)
        ).body
        return Call(
            body.instance_id, body.channel_id, body.user_id, body.aiagent_user_id, body.token, body.request_id
        )

    def describe(self, instance_id: str) -> Any:
        return self.client.describe_aiagent_instance(
            models.DescribeAIAgentInstanceRequest(instance_id=instance_id)
        ).body.instance

    def stop(self, instance_id: str) -> Any:
        return self.client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=instance_id))

    def speak(self, instance_id: str, text: str, **fields: Any) -> str:
        """SendAIAgentSpeech; returns its RequestId."""
        response = self.client.send_aiagent_speech(
            models.SendAIAgentSpeechRequest(instance_id=instance_id, text=text, **fields)
        )
        request_id: str = response.body.request_id
        return request_id

    # Async variants: the SDK blocks, so run it in a thread to keep the WebSocket reader going.
    async def aspeak(self, instance_id: str, text: str, **fields: Any) -> str:
        return await asyncio.to_thread(self.speak, instance_id, text, **fields)

    async def adescribe(self, instance_id: str) -> Any:
        return await asyncio.to_thread(self.describe, instance_id)

    async def wait_status(self, instance_id: str, status: str, *, timeout_s: float = 10.0) -> Any:
        """Poll Describe until Status is ``status``; returns the instance."""
        deadline = time.monotonic() + timeout_s
        while True:
            instance = await self.adescribe(instance_id)
            if instance.status == status or time.monotonic() > deadline:
                assert instance.status == status, f"{instance_id} is {instance.status}, expected {status}"
                return instance
            await asyncio.sleep(0.2)

    @staticmethod
    def error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ClientException:
        """Call ``fn`` expecting the SDK's client error; check the error body is the ICE envelope."""
        with pytest.raises(ClientException) as caught:
            fn(*args, **kwargs)
        exc = caught.value
        assert isinstance(exc.data, dict), exc
        assert exc.data.keys() >= ENVELOPE_KEYS, f"not an ICE error envelope: {json.dumps(exc.data)}"
        assert exc.data["Code"] == exc.code
        return exc


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    """One server per test module (tests in a module must not depend on each other's calls).

    Its exit status is not checked here: ``test_lifecycle`` tests clean shutdown once.
    """
    with HeraldServer(check_exit=False) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: HeraldServer) -> Api:
    return Api(server)


@pytest.fixture
def call(api: Api) -> Iterator[Call]:
    """A fresh call on the default agent, stopped after the test."""
    generated = api.generate_call()
    yield generated
    with contextlib.suppress(ClientException):  # the test stopped it already
        api.stop(generated.instance_id)
