"""Make Herald's default agent speak, and record what a listener hears to a WAV file.

    python examples/say.py --endpoint 127.0.0.1:8080 --key AK --secret SK "Hello, welcome to use our service"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import wave

import websockets
from alibabacloud_ice20201109 import models
from alibabacloud_ice20201109.client import Client
from alibabacloud_tea_openapi.models import Config

SAMPLE_RATE_HZ = 16_000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--endpoint", default="127.0.0.1:8080")
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", default="agent.wav")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to listen")
    args = parser.parse_args()

    ice = Client(Config(access_key_id=args.key, access_key_secret=args.secret, endpoint=args.endpoint, protocol="http"))
    call = ice.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
    url = f"ws://{args.endpoint}/v1/calls/{call.channel_id}/audio?token={call.token}&sample_rate={SAMPLE_RATE_HZ}"
    pcm = bytearray()
    async with websockets.connect(url) as ws:
        await asyncio.to_thread(
            ice.send_aiagent_speech, models.SendAIAgentSpeechRequest(instance_id=call.instance_id, text=args.text)
        )
        loop = asyncio.get_running_loop()
        until = loop.time() + args.seconds
        while (left := until - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            if isinstance(message, bytes):
                pcm += message
            else:
                print(json.loads(message))
    ice.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))
    with wave.open(args.out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(bytes(pcm))
    print(f"wrote {len(pcm) / 2 / SAMPLE_RATE_HZ:.1f} s to {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
