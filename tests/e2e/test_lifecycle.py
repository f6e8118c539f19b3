"""The server process: clean shutdown, recovery after a restart, the generated development key."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing.audio_client import AudioRecorder
from herald.testing.server import DEV_KEY_FILE, HeraldServer

pytestmark = pytest.mark.e2e


def generate(client) -> object:
    return client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body


def describe(client, instance_id: str):
    return client.describe_aiagent_instance(
        models.DescribeAIAgentInstanceRequest(instance_id=instance_id)
    ).body.instance


async def test_live_instances_are_finished_after_a_restart():
    with HeraldServer(check_exit=False) as server:
        client = server.sdk_client()
        joined = generate(client)
        waiting = generate(client)
        stopped = generate(client)
        client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=stopped.instance_id))
        stopped_end = describe(client, stopped.instance_id).call_info.call_end_time

        rec = await AudioRecorder(server.audio_url(joined.channel_id, joined.token)).connect()
        try:
            await rec.wait_for_frames(10)
            assert describe(client, joined.instance_id).status == "Executing"
            # Stop in a thread so the client keeps answering the close handshake, as a live one would.
            # The exit status is test_sigterm_exits_cleanly's business.
            await asyncio.to_thread(server.stop)
            await rec.wait_until(lambda: rec.closed, timeout_s=10, what="the connection to close")
        finally:
            await rec.close()

        server.start()
        client = server.sdk_client()
        for call in (joined, waiting):
            instance = describe(client, call.instance_id)
            assert instance.status == "Finished", call.instance_id
            assert instance.call_info.call_end_time
            assert instance.call_info.hangup_role == 2
            assert instance.runtime_config.channel_id == call.channel_id
        assert describe(client, stopped.instance_id).call_info.call_end_time == stopped_end

        listed = client.list_aiagent_instance(
            models.ListAIAgentInstanceRequest(aiagent_id="default", page_number=1, page_size=100)
        ).body.instances
        channels = {i.runtime_config.channel_id for i in listed}
        assert {joined.channel_id, waiting.channel_id, stopped.channel_id} <= channels
        assert all(i.status == "Finished" for i in listed)

        fresh = generate(client)
        assert describe(client, fresh.instance_id).status == "Created"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_cleanly(sig):
    with HeraldServer() as server:
        assert server.stop(sig=sig, check=False) == 0, server.logs()[-3000:]


def test_dev_key_is_generated_once_and_reused():
    with HeraldServer(access_key=None, check_exit=False) as server:
        key_file = server.data_dir / DEV_KEY_FILE
        stored = json.loads(key_file.read_text())
        assert stored["AccessKeyId"]
        assert stored["AccessKeySecret"]
        assert stored["AccessKeyId"] in server.logs()
        assert generate(server.sdk_client()).instance_id

        server.restart()
        assert json.loads(key_file.read_text()) == stored
        assert generate(server.sdk_client()).instance_id


def test_dev_key_is_not_written_when_a_key_is_configured():
    with HeraldServer(check_exit=False) as server:
        assert not (server.data_dir / DEV_KEY_FILE).exists()
        client = server.sdk_client(access_key_id="dev", access_key_secret="dev")
        with pytest.raises(ClientException, match="InvalidAccessKeyId"):
            generate(client)
