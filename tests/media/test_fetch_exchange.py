"""SafeFetcher.exchange: a POST whose answer is read as it arrives, under the same address policy."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from herald.media.fetch import FetchError, FetchLimits, SafeFetcher
from herald.media.netguard import AddressPolicy
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.receiver import CallbackReceiver

LOOPBACK = "127.0.0.1"
BODY = json.dumps({"eventId": "e-1", "text": "héllo"}).encode()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(LOOPBACK) as server:
        yield server


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    fetcher = SafeFetcher(AddressPolicy.from_setting(LOOPBACK), FetchLimits(read_timeout_s=5.0))
    yield fetcher
    await fetcher.aclose()


async def test_a_post_reaches_the_server_with_its_body_and_headers(
    receiver: CallbackReceiver, fetcher: SafeFetcher
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer k-1", "Accept": "text/plain"}

    async with fetcher.exchange(receiver.url, BODY, headers) as answer:
        body = b"".join([chunk async for chunk in answer.chunks()])

    assert answer.status_code == 200
    assert answer.content_type == "application/json"
    assert body == b'{"ok":true}'
    [request] = receiver.requests()
    assert request.path == "/callbacks"
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer k-1"
    assert request.headers["accept"] == "text/plain"  # the caller's headers win over the defaults
    assert request.headers["host"] == f"{LOOPBACK}:{receiver.port}"


@pytest.mark.parametrize("status", [400, 404, 503])
async def test_an_error_status_is_yielded_with_its_body(
    receiver: CallbackReceiver, fetcher: SafeFetcher, status: int
) -> None:
    receiver.fail_first(1, status)

    async with fetcher.exchange(receiver.url, BODY, {}) as answer:
        body = b"".join([chunk async for chunk in answer.chunks()])

    assert answer.status_code == status
    assert body == b'{"ok":false}'


async def test_loopback_is_refused_by_default(receiver: CallbackReceiver) -> None:
    fetcher = SafeFetcher(AddressPolicy.from_setting(""))
    try:
        with pytest.raises(FetchError) as info:
            async with fetcher.exchange(receiver.url, BODY, {}):
                pytest.fail("a refused exchange must not yield")
    finally:
        await fetcher.aclose()

    assert info.value.reason == "the address 127.0.0.1 is loopback"
    assert receiver.requests() == []


async def test_a_bad_url_is_refused_before_any_io(fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchError, match="must use http or https"):
        async with fetcher.exchange("file:///etc/passwd", BODY, {}):
            pytest.fail("a refused exchange must not yield")


async def test_the_answer_is_read_as_it_arrives(fetcher: SafeFetcher) -> None:
    with ScriptedLlm() as llm:
        llm.script(Reply("x" * 40, chunk_chars=4, delay_between_s=0.05))  # 10 pieces over 0.45 s
        body = json.dumps({"stream": True}).encode()
        arrivals: list[float] = []
        started = time.monotonic()

        async with fetcher.exchange(llm.base_url + "/chat/completions", body, {}) as answer:
            async for _ in answer.chunks():
                arrivals.append(time.monotonic() - started)

    assert len(arrivals) >= 10
    assert arrivals[0] < 0.3
    assert arrivals[-1] - arrivals[0] > 0.3


async def test_limits_apply_to_one_exchange(fetcher: SafeFetcher) -> None:
    with ScriptedLlm() as llm:
        llm.script(Reply("x" * 4000, chunk_chars=500, delay_between_s=0.0))
        body = json.dumps({"stream": True}).encode()

        url = llm.base_url + "/chat/completions"

        async def read_all() -> None:
            async with fetcher.exchange(url, body, {}, limits=FetchLimits(max_bytes=1000)) as answer:
                async for _ in answer.chunks():
                    pass

        with pytest.raises(FetchError, match="larger than 1 kB"):
            await read_all()
